//! Small crafted inputs that once crashed the program (abort, panic) and must now be errors
//! naming the file and the limit: pickle memo bombs and deep pickles,
//! zip entries that lie about their size, zip bombs, stride-0 tensors, huge model sizes, huge ids
//! without a vocabulary, and a CUDA driver library that lacks a function. (Deeply nested JSON is
//! read, not refused: tests/data_xuetangx.rs.)

mod common;

use common::text;

use arrow::array::{ArrayRef, ListBuilder, UInt64Builder};
use recmaml::checkpoint::load_state_dict;
use recmaml::config::Config;
use recmaml::data::{read_episodes, read_pair_file};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn recmaml(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recmaml"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// `recmaml train --config C --out OUT --set S...` with a small model (E 8, H 6) in C.
fn train(out: &Path, sets: &[String], env: &[(&str, &str)]) -> Output {
    let cfg = out.with_extension("toml");
    std::fs::write(&cfg, "[model]\nembed_dim = 8\nhidden_dim = 6\n").unwrap();
    let (cfg, out) = (cfg.display().to_string(), out.display().to_string());
    let mut args = vec!["train", "--config", &cfg, "--out", &out];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = recmaml(&args, env);
    std::fs::remove_file(&cfg).unwrap();
    o
}

/// Asserts a failed run with a message (exit 1 or 2, not a signal), no panic, and no `out`.
fn assert_clean_failure(o: &Output, out: &Path) -> String {
    let t = text(o);
    assert!(
        matches!(o.status.code(), Some(1) | Some(2)),
        "{:?}: {t}",
        o.status
    );
    assert!(!t.contains("panicked"), "{t}");
    assert!(!out.exists(), "a failed run left {}", out.display());
    t
}

fn fixture(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch/exp-tiny")
        .join(file)
        .display()
        .to_string()
}

// --- .pth checkpoints ----------------------------------------------------------------------

/// A zip holding `archive/data.pkl` = `pkl` and the given storages (stored, or deflated).
fn write_zip(path: &Path, pkl: &[u8], storages: &[(&str, &[u8])], deflate: bool) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(pkl).unwrap();
    for (key, bytes) in storages {
        zip.start_file(format!("archive/data/{key}"), opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn global(p: &mut Vec<u8>, module: &str, name: &str) {
    p.push(b'c');
    p.extend(format!("{module}\n{name}\n").as_bytes());
}

fn short_str(p: &mut Vec<u8>, s: &str) {
    p.push(b'X');
    p.extend((s.len() as u32).to_le_bytes());
    p.extend(s.as_bytes());
}

fn int(p: &mut Vec<u8>, i: u32) {
    p.push(b'J');
    p.extend(i.to_le_bytes());
}

/// `{name: _rebuild_tensor_v2(FloatStorage(key, numel), 0, size, stride)}`, as torch writes it.
fn state_dict_pickle(name: &str, numel: u32, size: &[u32], stride: &[u32]) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    global(&mut p, "collections", "OrderedDict");
    p.extend([b')', b'R', b'(']);
    short_str(&mut p, name);
    global(&mut p, "torch._utils", "_rebuild_tensor_v2");
    p.extend([b'(', b'(']);
    short_str(&mut p, "storage");
    global(&mut p, "torch", "FloatStorage");
    short_str(&mut p, "0");
    short_str(&mut p, "cpu");
    int(&mut p, numel);
    p.extend([b't', b'Q']);
    int(&mut p, 0);
    for xs in [size, stride] {
        p.push(b'(');
        xs.iter().for_each(|&x| int(&mut p, x));
        p.push(b't');
    }
    p.extend([0x89, b')', b't', b'R', b'u', b'.']);
    p
}

fn checkpoint_error(path: &Path) -> String {
    let msg = load_state_dict(path).unwrap_err().to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "the error does not name {}: {msg}",
        path.display()
    );
    msg
}

#[test]
fn a_valid_crafted_state_dict_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ok.pth");
    let values: Vec<u8> = [1.5f32, -2.0, 0.25, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    write_zip(
        &path,
        &state_dict_pickle("w", 6, &[2, 3], &[3, 1]),
        &[("0", &values)],
        false,
    );
    let sd = load_state_dict(&path).unwrap();
    assert_eq!(sd.tensors["w"].shape, vec![2, 3]);
    assert_eq!(sd.tensors["w"].values, vec![1.5, -2.0, 0.25, 4.0, 5.0, 6.0]);
}

#[test]
fn a_pickle_that_copies_its_memo_over_and_over_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("memo.pth");
    // ] q0, then 60 times: ( h0 h0 l q0  — each round a list of two copies of the last one, so
    // the value doubles 60 times (2^60 objects) in 486 bytes.
    let mut p = vec![0x80, 2, b']', b'q', 0];
    for _ in 0..60 {
        p.extend([b'(', b'h', 0, b'h', 0, b'l', b'q', 0]);
    }
    p.push(b'.');
    assert_eq!(p.len(), 486);
    write_zip(&path, &p, &[], false);
    let msg = checkpoint_error(&path);
    assert!(
        msg.contains("data.pkl")
            && msg.contains("copies more than 4194304 objects")
            && msg.contains("memo"),
        "{msg}"
    );
}

#[test]
fn a_deeply_nested_pickle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("deep.pth");
    // None wrapped in a 1-tuple 100,000 times (TUPLE1), and lists nested with APPEND.
    for body in [
        std::iter::once(b'N')
            .chain(std::iter::repeat_n(0x85, 100_000))
            .collect::<Vec<u8>>(),
        std::iter::repeat_n(b']', 100_000)
            .chain(std::iter::repeat_n(b'a', 99_999))
            .collect(),
    ] {
        let mut p = vec![0x80, 2];
        p.extend(body);
        p.push(b'.');
        write_zip(&path, &p, &[], false);
        let msg = checkpoint_error(&path);
        assert!(msg.contains("nested deeper than 64 levels"), "{msg}");
    }
}

#[test]
fn a_stride_zero_expansion_beyond_the_storage_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("expand.pth");
    // One float expanded to 10^6 x 10^6 (10^12 elements, 8 TB as f64) by stride 0.
    write_zip(
        &path,
        &state_dict_pickle("w", 1, &[1_000_000, 1_000_000], &[0, 0]),
        &[("0", &1f32.to_le_bytes())],
        false,
    );
    let msg = checkpoint_error(&path);
    assert!(
        msg.contains("`w`")
            && msg.contains("1000000000000 elements, more than the 1 of its storage 0"),
        "{msg}"
    );
    // A size whose product overflows is named too.
    let huge = i32::MAX as u32;
    write_zip(
        &path,
        &state_dict_pickle("w", 1, &[huge, huge, huge], &[0, 0, 0]),
        &[("0", &1f32.to_le_bytes())],
        false,
    );
    let msg = checkpoint_error(&path);
    assert!(msg.contains("`w`") && msg.contains("overflows"), "{msg}");
}

/// Offsets of the 32-bit uncompressed-size fields of every local and central header in `zip`.
fn size_fields(zip: &[u8]) -> Vec<usize> {
    let mut at = Vec::new();
    for i in 0..zip.len().saturating_sub(4) {
        match &zip[i..i + 4] {
            b"PK\x03\x04" => at.push(i + 22),
            b"PK\x01\x02" => at.push(i + 24),
            _ => {}
        }
    }
    at
}

#[test]
fn a_zip_entry_declaring_a_huge_size_is_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("declared.pth");
    let values = [0u8; 24];
    write_zip(
        &path,
        &state_dict_pickle("w", 6, &[6], &[1]),
        &[("0", &values)],
        false,
    );
    // Every entry now declares 0xFFFFFFF0 (4 GiB) uncompressed bytes.
    let mut bytes = std::fs::read(&path).unwrap();
    for at in size_fields(&bytes) {
        bytes[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    let msg = checkpoint_error(&path);
    assert!(
        msg.contains("declares 4294967280 bytes uncompressed") && msg.contains("damaged"),
        "{msg}"
    );
}

#[test]
fn a_zip_bomb_through_warm_start_is_refused_with_the_limit_and_how_to_raise_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bomb = tmp.path().join("bomb.pth");
    // 8 MiB of zeros deflate to a few KB; with a parameter limit of 1 MiB the checkpoint may
    // expand to 2 MiB.
    let zeros = vec![0u8; 8 << 20];
    write_zip(
        &bomb,
        &state_dict_pickle("embedding.weight", 2 << 20, &[2 << 20], &[1]),
        &[("0", &zeros)],
        true,
    );
    assert!(std::fs::metadata(&bomb).unwrap().len() < 100_000);
    let out = tmp.path().join("run");
    let o = train(
        &out,
        &[
            format!("data.train={}", fixture("episodes.parquet")),
            "warmstart.use_warmstart=true".into(),
            format!("warmstart.pretrained_path={}", bomb.display()),
        ],
        &[("RECMAML_MAX_PARAM_MB", "1")],
    );
    let t = assert_clean_failure(&o, &out);
    assert!(
        t.contains("bomb.pth")
            && t.contains("archive/data/0")
            && t.contains("expands to 8388608 bytes")
            && t.contains("RECMAML_MAX_PARAM_MB"),
        "{t}"
    );
}

// --- configuration -------------------------------------------------------------------------

fn config_error(toml: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(Some(&path), &[]).unwrap_err().to_string()
}

#[test]
fn model_sizes_over_the_memory_limit_name_the_key() {
    for (toml, key) in [
        (
            "[model]\nembed_dim = 100000000\n",
            "config `model.embed_dim`",
        ),
        (
            "[model]\nhidden_dim = 1000000\n",
            "config `model.hidden_dim`",
        ),
        (
            "[model]\nhidden_dim = 4000000000000000000\n",
            "config `model.hidden_dim`",
        ),
        (
            "[model]\nembed_dim = 30000\nhidden_dim = 8000\n",
            "config `model.embed_dim`",
        ),
    ] {
        let e = config_error(toml);
        assert!(
            e.starts_with(key) && e.contains("too large") && e.contains("RECMAML_MAX_PARAM_MB"),
            "{toml}: {e}"
        );
    }
    // A float where an integer belongs names the key and the value.
    let e = config_error("[model]\nhidden_dim = 4e18\n");
    assert!(
        e.starts_with("config `model.hidden_dim`: invalid type: floating point"),
        "{e}"
    );
    // The same through --set.
    let e = Config::load(None, &["model.hidden_dim=1000000".into()])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("config `model.hidden_dim`: too large"), "{e}");
}

#[test]
fn wrong_types_name_the_key_and_huge_values_are_not_echoed_whole() {
    let e = config_error("[maml]\ninner_lr = \"abc\"\n");
    assert!(e.starts_with("config `maml.inner_lr`: invalid type"), "{e}");
    let huge = "a".repeat(10 << 20);
    let e = config_error(&format!("[maml]\ninner_lr = \"{huge}\"\n"));
    assert!(
        e.starts_with("config `maml.inner_lr`: invalid type") && e.contains("expected f64"),
        "{}",
        &e[..e.len().min(300)]
    );
    assert!(e.len() < 400, "{} bytes", e.len());
    // A TOML syntax error on a 10 MB line.
    let e = config_error(&format!("[maml]\ninner_lr = {huge}\n"));
    assert!(
        e.contains("invalid TOML") && e.len() < 2000,
        "{} bytes",
        e.len()
    );
    // And through --set.
    let e = Config::load(None, &[format!("maml.inner_lr={huge}")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config `maml.inner_lr`") && e.len() < 400,
        "{} bytes",
        e.len()
    );
}

// --- episodes and pairs without a vocabulary -------------------------------------------------

fn u64_list(rows: &[&[u64]]) -> ArrayRef {
    let mut b = ListBuilder::new(UInt64Builder::new());
    for r in rows {
        for &x in *r {
            b.values().append_value(x);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn u64_nested(rows: &[&[&[u64]]]) -> ArrayRef {
    let mut b = ListBuilder::new(ListBuilder::new(UInt64Builder::new()));
    for r in rows {
        for p in *r {
            for &x in *p {
                b.values().values().append_value(x);
            }
            b.values().append(true);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    let batch = arrow::array::RecordBatch::try_from_iter(cols).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// One episode (K = Q = 1) whose query label is `label`; the other ids are small.
fn write_episode(path: &Path, label: u64) {
    write_parquet(
        path,
        vec![
            ("support_prefixes", u64_nested(&[&[&[1, 2]], &[&[3]]])),
            ("support_labels", u64_list(&[&[2], &[4]])),
            ("query_prefixes", u64_nested(&[&[&[1, 2, 3]], &[&[2]]])),
            ("query_labels", u64_list(&[&[5], &[label]])),
        ],
    );
}

#[test]
fn a_huge_id_without_a_vocabulary_names_file_row_column_value_and_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("episodes.parquet");
    write_episode(&path, 3_000_000);
    let e = read_episodes(&path, None).unwrap_err().to_string();
    assert!(
        e.contains("episodes.parquet, row 1, column `query_labels`")
            && e.contains("item id 3000000 is too large")
            && e.contains("1000000 items")
            && e.contains("RECMAML_MAX_ITEMS"),
        "{e}"
    );
    // Ids beyond u32 and u64 ones beyond i64 are reported with their own value.
    for big in [4_000_000_000u64, u64::MAX] {
        write_episode(&path, big);
        let e = read_episodes(&path, None).unwrap_err().to_string();
        assert!(e.contains(&format!("item id {big} is too large")), "{e}");
        let e = read_episodes(&path, Some(10)).unwrap_err().to_string();
        assert!(
            e.contains(&format!("item id {big} is outside [0, 10)")),
            "{e}"
        );
    }
    // With the id below the limit the file reads, with V from the data.
    write_episode(&path, 999_999);
    assert_eq!(read_episodes(&path, None).unwrap().n_items, 1_000_000);
}

#[test]
fn training_on_a_huge_id_without_a_vocabulary_is_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("episodes.parquet");
    write_episode(&path, 3_000_000);
    let out = tmp.path().join("run");
    let sets = [
        format!("data.train={}", path.display()),
        "maml.meta_batch_size=1".to_string(),
    ];
    let train = |env: &[(&str, &str)]| train(&out, &sets, env);
    let t = assert_clean_failure(&train(&[]), &out);
    assert!(
        t.contains("row 1, column `query_labels`") && t.contains("RECMAML_MAX_ITEMS"),
        "{t}"
    );
    // Raising the item limit moves the check to the parameter memory: 3,000,001 items of the
    // default sizes is more than 64 MiB of parameters.
    let t = assert_clean_failure(
        &train(&[
            ("RECMAML_MAX_ITEMS", "4000000"),
            ("RECMAML_MAX_PARAM_MB", "64"),
        ]),
        &out,
    );
    assert!(
        t.contains("episodes.parquet")
            && t.contains("V = 3000001")
            && t.contains("the limit is 64 MiB (raise it with RECMAML_MAX_PARAM_MB)"),
        "{t}"
    );
}

#[test]
fn pairs_without_a_vocabulary_bound_their_ids_too() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pairs_train.parquet");
    let label: ArrayRef = Arc::new(arrow::array::UInt64Array::from(vec![3, u64::MAX]));
    let ids: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![0, 1]));
    write_parquet(
        &path,
        vec![
            ("pair_id", ids.clone()),
            ("prefix", u64_list(&[&[1], &[2]])),
            ("label", label),
        ],
    );
    let e = read_pair_file(&path, None).unwrap_err().to_string();
    assert!(
        e.contains("row 1, column `label`") && e.contains("18446744073709551615"),
        "{e}"
    );
    let label: ArrayRef = Arc::new(arrow::array::UInt64Array::from(vec![3, 5_000_000]));
    write_parquet(
        &path,
        vec![
            ("pair_id", ids),
            ("prefix", u64_list(&[&[1], &[2]])),
            ("label", label),
        ],
    );
    let e = read_pair_file(&path, None).unwrap_err().to_string();
    assert!(
        e.contains("row 1, column `label`")
            && e.contains("item id 5000000 is too large")
            && e.contains("RECMAML_MAX_ITEMS"),
        "{e}"
    );
}

// --- a CUDA driver library without a function ------------------------------------------------

#[test]
fn a_cuda_driver_without_a_function_is_an_error_naming_the_library_and_function() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("fake.c");
    // Enough for cudarc to find a library and count one device; cuGetErrorString is missing.
    std::fs::write(
        &src,
        "int cuInit(unsigned f) { return 0; }\n\
         int cuDriverGetVersion(int *v) { *v = 13000; return 0; }\n\
         int cuDeviceGetCount(int *n) { *n = 1; return 0; }\n\
         int cuGetErrorName(int e, const char **s) { *s = \"fake\"; return 0; }\n",
    )
    .unwrap();
    let lib = tmp.path().join("libcuda.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    match Command::new(&cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
    {
        Ok(o) if o.status.success() => {}
        other => {
            common::skip(
                common::Needs::Emu,
                &format!("no C compiler ({cc}) to build a fake libcuda.so: {other:?}"),
            );
            return;
        }
    }
    let out = tmp.path().join("run");
    let o = train(
        &out,
        &[
            format!("data.train={}", fixture("episodes.parquet")),
            "maml.meta_batch_size=2".into(),
            "run.backend=cuda".into(),
        ],
        &[("LD_LIBRARY_PATH", &tmp.path().display().to_string())],
    );
    let t = assert_clean_failure(&o, &out);
    assert!(
        t.contains("libcuda.so") && t.contains("cuGetErrorString"),
        "{t}"
    );
}
