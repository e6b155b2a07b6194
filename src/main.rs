fn main() {
    println!("omniroute {}", env!("CARGO_PKG_VERSION"));
}
