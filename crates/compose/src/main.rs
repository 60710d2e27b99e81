//! `dame-compose DIR`: writes the ahead-of-time compositions Spin needs
//! (see the library) into the components' folder. `spin build` runs it.

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/components/wasm32-wasip2/release".into());
    compose::compose_all(std::path::Path::new(&dir))?;
    for (_, _, out) in compose::COMPOSITIONS {
        println!("wrote {dir}/{out}");
    }
    Ok(())
}
