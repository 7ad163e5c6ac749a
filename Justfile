# Developer shortcuts. The two commands that matter work without `just`:
#   cargo run --release -p switchyard -- run --config examples/quickstart.toml
#   bash tests/install-tools.sh && cargo test --workspace

run:
    cargo run --release -p switchyard -- run --config examples/quickstart.toml

test:
    bash tests/install-tools.sh
    cargo test --workspace

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

bench-codec:
    cargo bench -p switchyard-codec

bench-sipp:
    bash bench/run.sh

fuzz:
    cd fuzz && cargo +nightly fuzz run parse -- -max_total_time=900
