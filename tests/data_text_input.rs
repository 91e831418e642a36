//! Text-level details of the log readers: ids that are not UTF-8 are refused naming the line and
//! column (never merged into one U+FFFD name), a column named twice in a header is refused, and
//! a UTF-8 byte order mark is accepted. Each through `prepare`, which must leave nothing behind
//! when it refuses.

use recmaml::data::events::EventLog;
use recmaml::data::prepare::{self, Format, PrepareOptions};
use std::path::Path;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `prepare` of `bytes` (written to a file `name` in a new folder) into an output folder beside
/// it: its error text, after checking that it left nothing in that folder.
fn refused(name: &str, format: Format, bytes: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = dir.join(name);
    std::fs::write(&input, bytes).unwrap();
    let out = dir.join("out");
    let e = prepare::run(&PrepareOptions::new(&input, format, &out))
        .expect_err("prepare accepted it")
        .to_string();
    assert!(!out.exists(), "left {} behind: {e}", out.display());
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != name)
        .collect();
    assert!(leftovers.is_empty(), "left {leftovers:?}: {e}");
    e
}

fn read(dir: &Path, name: &str, format: Format, bytes: &[u8]) -> EventLog {
    let input = dir.join(name);
    std::fs::write(&input, bytes).unwrap();
    prepare::read_log(&input, format, true).unwrap()
}

#[test]
fn ids_that_are_not_utf8_are_refused_naming_line_and_column() {
    // Two items that U+FFFD replacement would make one: a\xff and a\xfe.
    let cases: [(&[u8], &str, &str); 3] = [
        (
            b"user_id,item_id,timestamp\nu1,x,1\nu1,a\xff,2\nu1,a\xfe,3\n",
            "item_id",
            "a\\xff",
        ),
        (
            b"user_id,item_id,timestamp\nu1,x,1\nu\xe9,x,2\n",
            "user_id",
            "u\\xe9",
        ),
        (
            b"user_id,item_id,timestamp,session_id\nu1,x,1,s\nu1,y,2,s\xc3\n",
            "session_id",
            "s\\xc3",
        ),
    ];
    for (bytes, column, escaped) in cases {
        let e = refused("log.csv", Format::Interactions, bytes);
        assert!(
            e.contains("log.csv, row 3")
                && e.contains(&format!("column `{column}`"))
                && e.contains("UTF-8")
                && e.contains(escaped),
            "{e}"
        );
    }
    // MovieLens ids go through the same reader.
    let e = refused(
        "u.data",
        Format::Movielens,
        b"1\t10\t5\t100\n1\t1\xff\t5\t200\n",
    );
    assert!(e.contains("u.data, row 2") && e.contains("UTF-8"), "{e}");
    // A XuetangX course id.
    let e = refused(
        "log.json",
        Format::Xuetangx,
        b"[[\"c\xff\", {\"u\": {\"s\": [[\"load_video\", \"2020-01-01T00:00:00\"]]}}]]",
    );
    assert!(
        e.contains("log.json") && e.contains("line 1") && e.contains("c\\xff"),
        "{e}"
    );
}

#[test]
fn a_column_named_twice_in_a_header_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let e = refused(
        "log.csv",
        Format::Interactions,
        b"user_id,item_id,timestamp,ITEM_ID\nu1,x,1,y\n",
    );
    assert!(
        e.contains("log.csv, row 1")
            && e.contains("column `item_id`")
            && e.contains("2 times")
            && e.contains("fields 2, 4"),
        "{e}"
    );
    let e = refused(
        "ratings.csv",
        Format::Movielens,
        b"userId,movieId,rating,timestamp,userId\n1,10,5,100,2\n",
    );
    assert!(
        e.contains("ratings.csv, row 1") && e.contains("column `userid`"),
        "{e}"
    );
    // A repeated column that is not read is no error.
    let log = read(
        tmp.path(),
        "extra.csv",
        Format::Interactions,
        b"user_id,note,item_id,note,timestamp\nu1,a,x,b,1\n",
    );
    assert_eq!(log.items, ["x"]);
}

#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let inputs: [(Format, &str, &[u8]); 3] = [
        (
            Format::Interactions,
            "log.csv",
            b"user_id,item_id,timestamp\nu1,x,1\nu1,y,2\nu2,x,3\n",
        ),
        (
            Format::Movielens,
            "ratings.csv",
            b"userId,movieId,rating,timestamp\n1,10,5,100\n1,11,4,200\n",
        ),
        (
            Format::Xuetangx,
            "log.json",
            b"[[\"c1\", {\"u\": {\"s\": [[\"load_video\", \"2020-01-01T00:00:00\"]]}}]]",
        ),
    ];
    for (format, name, bytes) in inputs {
        let plain = read(d, name, format, bytes);
        let with_bom = read(d, name, format, &[BOM, bytes].concat());
        assert_eq!(
            (&with_bom.users, &with_bom.items, &with_bom.events),
            (&plain.users, &plain.items, &plain.events),
            "{name}"
        );
        assert!(!plain.events.is_empty());
    }
}
