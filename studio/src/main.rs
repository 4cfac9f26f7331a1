//! Entry point of the studio's wasm binary, built and served by trunk.

fn main() {
    studio::start();
}
