#!/usr/bin/env bash
# Builds fuzz/corpus/<target>/ from the project's fixtures (fixtures/providers, fixtures/events,
# fixtures/send_results) and the hand-written seeds in fuzz/seeds/. Adds files only: what the
# fuzzer found in earlier runs stays. Input layouts are described in each target's header.
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../fixtures
corpus=corpus
mkdir -p "$corpus"/{twilio_webhook,twilio_signature,meta_webhook,meta_signature,api_json,config_toml,persisted_event}

# Twilio forms: `<callback query>\n<body>`.
for f in "$fixtures"/providers/twilio_*.form; do
    name=$(basename "$f" .form)
    { printf 'message_id=0190f0b2-7c1e-7d3a-9b2f-4c5d6e7f8a9b\n'; cat "$f"; } > "$corpus/twilio_webhook/$name"
done

# Signed requests from signatures.tsv: `<url>\n<signature>\n<settings>\n<body>` and
# `<header>\n<body>`.
tail -n +2 "$fixtures/providers/signatures.tsv" | while IFS=$'\t' read -r url _token file signature scheme; do
    case "$scheme" in
        twilio-*)
            { printf '%s\n%s\n\n' "$url" "$signature"; cat "$fixtures/providers/$file"; } \
                > "$corpus/twilio_signature/$file-$(printf '%s' "$url$signature" | sha1sum | cut -c1-8)"
            ;;
        meta-*)
            { printf '%s\n' "$signature"; cat "$fixtures/providers/$file"; } > "$corpus/meta_signature/$file"
            ;;
    esac
done
printf 'https://hub.example.com/webhooks/twilio/status\nx\nkey=KS1,algorithm=HMAC_SHA256\nMessageSid=SM1' \
    > "$corpus/twilio_signature/shared_key"
cp "$fixtures/providers/meta_verify_request.query" "$corpus/meta_signature/verify_request"

for f in "$fixtures"/providers/meta_webhook_*.json; do
    cp "$f" "$corpus/meta_webhook/"
done

cp seeds/api_json/* "$corpus/api_json/"
cp seeds/config_toml/* "$corpus/config_toml/"

# Persisted payloads: mode byte 1, the type's index in persisted::EVENT_TYPES, the version.
# The index comes from the order of EVENT_TYPES in crates/store/src/persisted.rs.
types=$(sed -n '/^pub const EVENT_TYPES/,/^];/p' ../crates/store/src/persisted.rs | grep -o '"[A-Za-z]*"' | tr -d '"')
index=0
for type in $types; do
    for f in "$fixtures/events/$type"/v*.bin; do
        [ -e "$f" ] || continue
        version=$(basename "$f" .bin | tr -d v)
        { printf "\\x01\\x$(printf %02x "$index")\\x$(printf %02x "$version")"; cat "$f"; } \
            > "$corpus/persisted_event/$type-v$version"
    done
    index=$((index + 1))
done
# Stored send results (mode byte 0: the rest is also read as a send result).
for f in "$fixtures"/send_results/*.bin; do
    { printf '\x00'; cat "$f"; } > "$corpus/persisted_event/send_result-$(basename "$f" .bin)"
done

for dir in "$corpus"/*/; do
    printf '%-18s %3d seeds\n' "$(basename "$dir")" "$(ls "$dir" | wc -l)"
done
