//! The README's table of supported APIs is the version table, row for row.

use corral::protocol::SUPPORTED;

#[test]
fn readme_api_table_matches_the_version_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- api-table").expect("api-table marker");
    let end = readme.find("<!-- /api-table -->").expect("api-table end marker");
    let rows: Vec<String> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| api ") && !l.starts_with("|---"))
        .map(|l| l.to_string())
        .collect();
    let mut expected: Vec<(i16, String)> =
        SUPPORTED.iter().map(|(k, min, max)| (*k as i16, format!("| {k:?} | {} | {min}-{max} |", *k as i16))).collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, r)| r).collect();
    assert_eq!(rows, expected, "update the README table from SUPPORTED");
}
