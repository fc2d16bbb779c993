//! `wagate templates create --header-file FILE`: the sample of a Meta template's media header,
//! read from a local file and carried in the request (base64), for when the header's URL is not
//! reachable from the hub or not the file the reviewers should see. The hub checks the type
//! against the header's kind and uploads it through Meta's Resumable Upload API.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use wagate_api as api;

/// The largest file the request can carry: the hub reads JSON bodies up to 2 MiB, and base64
/// grows the bytes by a third.
pub const MAX_BYTES: u64 = 1_500_000;

/// The MIME type Meta's upload takes for a file, by its extension.
fn content_type(path: &Path) -> Option<&'static str> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "mp4" => "video/mp4",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// Reads `path` as the request's header sample.
pub fn read(path: &Path) -> anyhow::Result<api::TemplateHeaderSample> {
    let shown = path.display();
    let content_type = content_type(path).with_context(|| {
        format!("--header-file {shown}: expected a .jpg, .jpeg, .png, .mp4 or .pdf file (the types Meta's upload takes)")
    })?;
    let length = std::fs::metadata(path)
        .with_context(|| format!("--header-file {shown}"))?
        .len();
    if length > MAX_BYTES {
        anyhow::bail!(
            "--header-file {shown}: {length} bytes, more than the {MAX_BYTES} a request can carry; \
             give the media's https URL in --header instead and leave --header-file out"
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("--header-file {shown}"))?;
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("header")
        .to_owned();
    Ok(api::TemplateHeaderSample {
        file_name,
        content_type: content_type.to_owned(),
        data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_becomes_a_sample_with_its_type_and_base64_bytes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("Listing.PNG");
        std::fs::write(&path, b"\x89PNG").expect("write");
        let sample = read(&path).expect("sample");
        assert_eq!(sample.file_name, "Listing.PNG");
        assert_eq!(sample.content_type, "image/png");
        assert_eq!(sample.data_base64, "iVBORw==");
    }

    #[test]
    fn an_unknown_type_or_a_file_too_large_is_refused_naming_the_flag() {
        let dir = tempfile::tempdir().expect("dir");
        let gif = dir.path().join("a.gif");
        std::fs::write(&gif, b"GIF89a").expect("write");
        let error = read(&gif).expect_err("gif");
        assert!(format!("{error:#}").contains("--header-file"), "{error:#}");
        let big = dir.path().join("big.jpg");
        let file = std::fs::File::create(&big).expect("create");
        file.set_len(MAX_BYTES + 1).expect("size");
        let error = read(&big).expect_err("too large");
        assert!(format!("{error:#}").contains("more than"), "{error:#}");
    }
}
