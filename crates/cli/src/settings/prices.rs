//! The price table the cost ledger prices messages by (docs/costs.md): a TOML file named by
//! `--price-table FILE`, `WAGATE_PRICE_TABLE` or the config file's `price_table` (in that
//! order). None: every cost is reported unpriced, never invented.

use std::path::PathBuf;

use wagate_app::PriceTable;

use super::sources::Sources;
use super::{env, ConfigError};

/// Reads and validates the price table, naming the setting and the file on any error.
pub(super) fn price_table(
    flag: Option<PathBuf>,
    sources: &Sources,
) -> Result<PriceTable, ConfigError> {
    let (setting, path) = match (flag, sources.env(env::PRICE_TABLE)) {
        (Some(path), _) => ("--price-table", path),
        (None, Some(var)) => (env::PRICE_TABLE, PathBuf::from(var)),
        (None, None) => match sources.file.price_table.clone() {
            Some(path) => ("price_table (in the --config file)", path),
            None => return Ok(PriceTable::empty()),
        },
    };
    let invalid = |reason: String| ConfigError::Invalid {
        setting: format!("{setting} ({})", path.display()),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| invalid(e.to_string()))?;
    PriceTable::from_toml(&text).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::OpCli;

    fn resolve(flag: Option<PathBuf>, var: Option<&str>) -> Result<PriceTable, ConfigError> {
        let var = var.map(str::to_owned);
        let environment = move |name: &str| (name == env::PRICE_TABLE).then(|| var.clone())?;
        let op = OpCli::default();
        let sources = Sources::load(None, &environment, &op)?;
        price_table(flag, &sources)
    }

    #[test]
    fn no_table_prices_nothing_and_a_bad_table_names_the_setting_and_entry() {
        assert!(resolve(None, None).expect("no table").is_empty());
        let dir = tempfile::tempdir().expect("dir");
        let good = dir.path().join("prices.toml");
        std::fs::write(
            &good,
            "[[prices]]\ncategory = \"marketing\"\ncountry = \"*\"\nprovider = \"0.05\"\n\
             fee = \"0.005\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"\n",
        )
        .expect("write");
        let table = resolve(None, Some(good.to_str().expect("utf-8"))).expect("a table");
        assert_eq!(table.entries().count(), 1);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[[prices]]\ncategory = \"promo\"\n").expect("write");
        let error = resolve(Some(bad), Some(good.to_str().expect("utf-8")))
            .expect_err("the flag wins and is refused")
            .to_string();
        assert!(error.contains("--price-table"), "{error}");
        assert!(error.contains("price entry 1: field `category`"), "{error}");
        let missing = resolve(Some(dir.path().join("none.toml")), None)
            .expect_err("missing file")
            .to_string();
        assert!(
            error.contains("--price-table") && missing.contains("none.toml"),
            "{missing}"
        );
    }
}
