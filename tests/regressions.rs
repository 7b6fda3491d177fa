//! Regression tests for inputs that once broke something (see tests/regressions/README.md).

// FileError carries its position and reason by value, as in the library.
#![allow(clippy::result_large_err)]

use std::path::Path;

use tallyman::format::testing::ctx_for;
use tallyman::tabular::SheetSelector;

#[test]
fn regression_calamine_cfb_slice_panic_is_a_clean_rejection() {
    for name in [
        "fuzz-calamine-cfb-slice-1.xls",
        "fuzz-calamine-cfb-slice-2.xls",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/regressions")
            .join(name);
        let result = tallyman::sheet::open_rows(&path, &ctx_for(&path), &SheetSelector::default())
            .and_then(|mut rows| {
                while rows.next_row()?.is_some() {}
                Ok(())
            });
        let err = result.expect_err("a corrupt container is refused");
        assert_eq!(err.reason.rule, "sheet-corrupt", "{name}: {err}");
        assert!(
            err.reason.message.contains("failed on this file"),
            "{name}: {err}"
        );
    }
}
