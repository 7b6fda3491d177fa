//! Writes the 997/999/TA1 acknowledgements tallyman would send for the given X12 files,
//! without the pipeline (in-memory outcomes and control numbers), so an independent
//! validator can check them: `cargo run --example x12_acks -- OUT_DIR FILE...`.
//! Used by `scripts/validate-acks.sh`.

use std::path::PathBuf;

use tallyman::format::testing::read_all;
use tallyman::format::Diagnostics;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out: PathBuf = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: x12_acks OUT_DIR FILE..."))?
        .into();
    std::fs::create_dir_all(&out)?;
    let formats = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("formats");
    let mut diags = Diagnostics::default();
    let set = tallyman::format::registry::load_formats(&formats, &mut diags);
    let x12 = set
        .by_name("x12")
        .ok_or_else(|| anyhow::anyhow!("no x12 format under {}", formats.display()))?;
    for file in args {
        let r = read_all(x12.as_ref(), std::path::Path::new(&file));
        let stem = std::path::Path::new(&file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for a in &r.acks {
            let path = out.join(format!("{stem}.{}", a.file_name));
            std::fs::write(&path, a.content.bytes()?)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
