//! Checkpoint files: PyTorch `.pth` fixtures, safetensors in every supported dtype, the mapping to
//! the flat parameter buffer with its shape errors, and atomic writes.

use recmaml::checkpoint::{
    dims_from_state_dict, load_state_dict, load_tensors_f32, params_from_state_dict, save_params,
    save_safetensors, DType,
};
use recmaml::model::{init_params, ModelDims, ParamLayout, PARAM_NAMES};
use recmaml::Error;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

mod common;

fn pth_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch-pth")
}

fn dims(v: usize, e: usize, h: usize) -> ModelDims {
    ModelDims {
        n_items: v,
        embed_dim: e,
        hidden_dim: h,
    }
}

/// The checkpoint error's message, or a failure naming what came back instead.
fn checkpoint_msg<T: std::fmt::Debug>(r: recmaml::Result<T>, file: &Path) -> String {
    match r {
        Err(e @ Error::Checkpoint { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&file.display().to_string()),
                "error does not name the file: {msg}"
            );
            msg
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn pth_fixtures_load_with_expected_names_shapes_and_values() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pth_dir().join("expected.json")).unwrap())
            .unwrap();
    let files = expected["files"].as_object().unwrap();
    assert_eq!(files.len(), 2);
    for (file, shapes) in files {
        let path = pth_dir().join(file);
        let sd = load_state_dict(&path).unwrap();
        let shapes = shapes.as_object().unwrap();
        assert_eq!(sd.tensors.len(), shapes.len(), "{file}");
        for (name, shape) in shapes {
            let t = sd
                .tensors
                .get(name)
                .unwrap_or_else(|| panic!("{file}: no `{name}`"));
            let shape: Vec<usize> = serde_json::from_value(shape.clone()).unwrap();
            assert_eq!(t.shape, shape, "{file} {name}");
            assert_eq!(t.values.len(), shape.iter().product::<usize>());
            assert_eq!(t.dtype, DType::F32);
            assert!(t.values.iter().all(|v| v.is_finite()), "{file} {name}");
            let first = t.values[0];
            assert!(
                t.values.iter().any(|&v| v != first),
                "{file} {name} is constant"
            );
        }
        assert!(sd.metadata.is_empty());
    }
}

/// Tensor elements of the `.pth` fixtures (file, tensor, row-major index, value) as
/// `tests/fixtures/torch-pth/element_values.py` prints them: it reads each one both through
/// Python's `zipfile` + a restricted `pickle.Unpickler` + `struct.unpack('<f')` (no torch) and
/// through `torch.load`, checks that the two agree, and prints the float32 widened to float64 with
/// `repr` (which round-trips it exactly). Reproduce with
/// `python3 tests/fixtures/torch-pth/element_values.py`; `pth_element_script_prints_these_values`
/// runs it when a Python with torch is available.
const PTH_ELEMENTS: [(&str, &str, usize, f64); 8] = [
    (
        "seed_hidden64_output.pth",
        "embedding.weight",
        0,
        0.2211131453514099,
    ),
    (
        "seed_hidden64_output.pth",
        "embedding.weight",
        65,
        0.1270965337753296,
    ),
    (
        "seed_hidden64_output.pth",
        "embedding.weight",
        6399,
        -0.028258783742785454,
    ),
    (
        "seed_hidden64_output.pth",
        "output.bias",
        0,
        -0.13596728444099426,
    ),
    (
        "seed_hidden64_output.pth",
        "output.bias",
        99,
        -0.18345946073532104,
    ),
    (
        "upstream_hidden128_fc.pth",
        "gru.weight_hh_l0",
        0,
        0.22296062111854553,
    ),
    (
        "upstream_hidden128_fc.pth",
        "gru.weight_hh_l0",
        49151,
        0.21160906553268433,
    ),
    (
        "upstream_hidden128_fc.pth",
        "fc.weight",
        12799,
        -0.5977197885513306,
    ),
];

#[test]
fn pth_values_match_an_independent_reader() {
    for (file, name, i, want) in PTH_ELEMENTS {
        let sd = load_state_dict(&pth_dir().join(file)).unwrap();
        assert_eq!(sd.tensors[name].values[i], want, "{file} {name}[{i}]");
    }
}

/// The Python that has torch (`$RECMAML_PYTHON`, else `python3`), or why there is none.
fn python_with_torch() -> Result<String, String> {
    let py = std::env::var("RECMAML_PYTHON").unwrap_or_else(|_| "python3".into());
    match std::process::Command::new(&py)
        .args(["-c", "import torch"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(py),
        Ok(o) => Err(format!(
            "torch not importable with {py} ({})",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {py} ({e})")),
    }
}

/// The literals of [`PTH_ELEMENTS`] are exactly what the script prints, line by line.
#[test]
fn pth_element_script_prints_these_values() {
    let py = match python_with_torch() {
        Ok(py) => py,
        Err(why) => {
            return common::skip(
                common::Needs::Torch,
                &format!("{why}; set RECMAML_PYTHON to a Python with torch"),
            )
        }
    };
    let out = std::process::Command::new(&py)
        .arg(pth_dir().join("element_values.py"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "element_values.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<String> = PTH_ELEMENTS
        .iter()
        .map(|(file, name, i, v)| format!("{file} {name}[{i}] = {v:?}"))
        .collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want);
}

#[test]
fn upstream_fc_checkpoint_maps_to_output_and_names_the_setting_on_mismatch() {
    let path = pth_dir().join("upstream_hidden128_fc.pth");
    let sd = load_state_dict(&path).unwrap();
    assert_eq!(
        dims_from_state_dict(&sd, &path).unwrap(),
        dims(100, 64, 128)
    );

    let layout = ParamLayout::new(dims(100, 64, 128));
    let theta = params_from_state_dict(&sd, &layout, &path).unwrap();
    for t in &layout.tensors {
        let file_name = t.name.replace("output.", "fc.");
        let src = &sd.tensors[&file_name].values;
        let got: Vec<f64> = theta[t.range()].iter().map(|&v| v as f64).collect();
        assert_eq!(&got, src, "{} from {file_name}", t.name);
    }

    let msg = checkpoint_msg(
        params_from_state_dict(&sd, &ParamLayout::new(dims(100, 64, 64)), &path),
        &path,
    );
    for part in [
        "gru.weight_hh_l0",
        "[384, 128]",
        "[192, 64]",
        "`model.hidden_dim = 128`",
        "`fc.weight`",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert!(!msg.contains("embed_dim"), "{msg}");

    let msg = checkpoint_msg(
        params_from_state_dict(&sd, &ParamLayout::new(dims(100, 32, 128)), &path),
        &path,
    );
    assert!(
        msg.contains("embedding.weight") && msg.contains("`model.embed_dim = 64`"),
        "{msg}"
    );
    let msg = checkpoint_msg(
        params_from_state_dict(&sd, &ParamLayout::new(dims(120, 64, 128)), &path),
        &path,
    );
    assert!(
        msg.contains("n_items = 100") && msg.contains("n_items = 120"),
        "{msg}"
    );
    assert!(!msg.contains("hidden_dim"), "{msg}");
}

#[test]
fn seed_checkpoint_fits_hidden_64() {
    let path = pth_dir().join("seed_hidden64_output.pth");
    let sd = load_state_dict(&path).unwrap();
    let d = dims_from_state_dict(&sd, &path).unwrap();
    assert_eq!(d, dims(100, 64, 64));
    let theta = params_from_state_dict(&sd, &ParamLayout::new(d), &path).unwrap();
    assert_eq!(theta.len(), ParamLayout::new(d).len);
}

#[test]
fn missing_extra_and_duplicate_tensors_are_named() {
    let path = pth_dir().join("seed_hidden64_output.pth");
    let layout = ParamLayout::new(dims(100, 64, 64));
    let mut sd = load_state_dict(&path).unwrap();
    let w = sd.tensors.remove("gru.bias_hh_l0").unwrap();
    sd.tensors.insert("gru.bias_hh_l1".into(), w);
    for msg in [
        checkpoint_msg(params_from_state_dict(&sd, &layout, &path), &path),
        checkpoint_msg(dims_from_state_dict(&sd, &path), &path),
    ] {
        assert!(msg.contains("missing `gru.bias_hh_l0`"), "{msg}");
        assert!(msg.contains("`gru.bias_hh_l1`"), "{msg}");
    }

    let mut sd = load_state_dict(&path).unwrap();
    let b = sd.tensors["output.bias"].clone();
    sd.tensors.insert("fc.bias".into(), b);
    let msg = checkpoint_msg(params_from_state_dict(&sd, &layout, &path), &path);
    assert!(
        msg.contains("`fc.bias`") && msg.contains("`output.bias`"),
        "{msg}"
    );
}

#[test]
fn inconsistent_shapes_are_refused_when_inferring_dims() {
    let path = pth_dir().join("seed_hidden64_output.pth");
    let mut sd = load_state_dict(&path).unwrap();
    let t = sd.tensors.get_mut("output.bias").unwrap();
    t.shape = vec![99];
    t.values.pop();
    let msg = checkpoint_msg(dims_from_state_dict(&sd, &path), &path);
    assert!(
        msg.contains("output.bias") && msg.contains("[99]") && msg.contains("[100]"),
        "{msg}"
    );
}

#[test]
fn non_finite_weights_are_refused() {
    let path = pth_dir().join("seed_hidden64_output.pth");
    let mut sd = load_state_dict(&path).unwrap();
    sd.tensors.get_mut("gru.weight_hh_l0").unwrap().values[5] = f64::NAN;
    let msg = checkpoint_msg(
        params_from_state_dict(&sd, &ParamLayout::new(dims(100, 64, 64)), &path),
        &path,
    );
    assert!(
        msg.contains("gru.weight_hh_l0") && msg.contains("index 5"),
        "{msg}"
    );
}

#[test]
fn safetensors_round_trip_is_exact_and_keeps_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let layout = ParamLayout::new(dims(50, 8, 6));
    let theta = init_params(&layout, 3);
    let meta = BTreeMap::from([("iteration".to_string(), "17".to_string())]);
    save_params(&path, &layout, &theta, &meta).unwrap();

    let sd = load_state_dict(&path).unwrap();
    assert_eq!(sd.metadata, meta);
    let names: Vec<&str> = sd.tensors.keys().map(String::as_str).collect();
    let mut want = PARAM_NAMES.to_vec();
    want.sort();
    assert_eq!(names, want);
    assert!(sd.tensors.values().all(|t| t.dtype == DType::F32));
    let back = params_from_state_dict(&sd, &layout, &path).unwrap();
    assert_eq!(
        back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        theta.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );

    let f = load_tensors_f32(&path).unwrap();
    assert_eq!(f.meta("iteration").unwrap(), "17");
    let t = &layout.tensors[2];
    assert_eq!(f.get(t.name, &t.shape).unwrap(), &theta[t.range()]);
    assert!(f
        .get(t.name, &[1, 2])
        .unwrap_err()
        .to_string()
        .contains("gru.weight_hh_l0"));
    let msg = checkpoint_msg(f.meta("absent"), &path);
    assert!(msg.contains("no metadata key `absent`"), "{msg}");
}

fn write_st(path: &Path, dtype: Dtype, shape: &[usize], bytes: &[u8]) {
    let view = TensorView::new(dtype, shape.to_vec(), bytes).unwrap();
    let data = safetensors::serialize([("x", view)], None).unwrap();
    std::fs::write(path, data).unwrap();
}

fn bytes16(bits: &[u16]) -> Vec<u8> {
    bits.iter().flat_map(|b| b.to_le_bytes()).collect()
}

/// 16-bit patterns written by hand with their IEEE values (independent of the `half` crate).
#[test]
fn f16_bf16_f64_files_load_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");

    // f16: 1, -2.5, 65504 (largest), 2^-24 (smallest subnormal), 1/3 rounded, -0.
    write_st(
        &path,
        Dtype::F16,
        &[2, 3],
        &bytes16(&[0x3C00, 0xC100, 0x7BFF, 0x0001, 0x3555, 0x8000]),
    );
    let t = &load_state_dict(&path).unwrap().tensors["x"];
    assert_eq!(
        (t.dtype, t.shape.as_slice()),
        (DType::F16, &[2usize, 3][..])
    );
    assert_eq!(
        t.values,
        [1.0, -2.5, 65504.0, 2f64.powi(-24), 0.333251953125, -0.0]
    );

    // bf16: 1, -2.5, 0x7F7F = (2 - 2^-7) 2^127 (largest), 2^-133 (smallest subnormal).
    write_st(
        &path,
        Dtype::BF16,
        &[4],
        &bytes16(&[0x3F80, 0xC020, 0x7F7F, 0x0001]),
    );
    let t = &load_state_dict(&path).unwrap().tensors["x"];
    assert_eq!(t.dtype, DType::BF16);
    assert_eq!(
        t.values,
        [
            1.0,
            -2.5,
            (2.0 - 2f64.powi(-7)) * 2f64.powi(127),
            2f64.powi(-133)
        ]
    );

    let v = [0.1f64, -1e300, 3.0];
    write_st(
        &path,
        Dtype::F64,
        &[3],
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    );
    let t = &load_state_dict(&path).unwrap().tensors["x"];
    assert_eq!((t.dtype, t.values.as_slice()), (DType::F64, &v[..]));
    let f = load_tensors_f32(&path).unwrap();
    assert_eq!(f.tensors["x"].1[0], 0.1f32);

    write_st(&path, Dtype::I32, &[1], &[1, 0, 0, 0]);
    let msg = checkpoint_msg(load_state_dict(&path), &path);
    assert!(msg.contains("`x`") && msg.contains("I32"), "{msg}");
}

#[test]
fn truncated_garbage_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let layout = ParamLayout::new(dims(20, 4, 3));
    save_params(&good, &layout, &init_params(&layout, 1), &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = checkpoint_msg(load_state_dict(&cut), &cut);
    assert!(msg.contains("truncated"), "{msg}");

    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"this is not a checkpoint at all").unwrap();
    checkpoint_msg(load_state_dict(&junk), &junk);

    let pth = std::fs::read(pth_dir().join("seed_hidden64_output.pth")).unwrap();
    let cut_pth = dir.path().join("cut.pth");
    std::fs::write(&cut_pth, &pth[..pth.len() / 2]).unwrap();
    checkpoint_msg(load_state_dict(&cut_pth), &cut_pth);

    let absent = dir.path().join("absent.safetensors");
    let e = load_state_dict(&absent).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("absent.safetensors"),
        "{e}"
    );
}

#[test]
fn atomic_write_replaces_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let a = [1.0f32, 2.0, 3.0];
    let b = [4.0f32, 5.0];
    save_safetensors(&path, &[("a", &[3], &a)], &BTreeMap::new()).unwrap();
    save_safetensors(&path, &[("b", &[2, 1], &b)], &BTreeMap::new()).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ckpt.safetensors"]);
    let f = load_tensors_f32(&path).unwrap();
    assert_eq!(f.tensors.keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(f.get("b", &[2, 1]).unwrap(), &b);

    // A failed write (the target is a directory) leaves neither a file nor a temporary behind.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::create_dir(sub.join("x.safetensors")).unwrap();
    let target = sub.join("x.safetensors");
    let e = save_safetensors(&target, &[("a", &[3], &a)], &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if *path == target)
            && e.to_string().contains(&target.display().to_string()),
        "{e}"
    );
    let names: Vec<_> = std::fs::read_dir(&sub)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["x.safetensors"]);

    // Bad input is refused before anything is written.
    let e = save_safetensors(
        &dir.path().join("bad.safetensors"),
        &[("a", &[2], &a)],
        &BTreeMap::new(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Shape(_))
            && msg.contains("bad.safetensors")
            && msg.contains("tensor `a` has shape [2] but 3 values"),
        "{msg}"
    );
    let e = save_safetensors(
        &dir.path().join("bad.safetensors"),
        &[("a", &[3], &a), ("a", &[3], &a)],
        &BTreeMap::new(),
    );
    let msg = checkpoint_msg(e, &dir.path().join("bad.safetensors"));
    assert!(msg.contains("tensor `a` given twice"), "{msg}");
    let theta = vec![0f32; 3];
    let layout = ParamLayout::new(dims(5, 2, 2));
    let e = save_params(
        &dir.path().join("bad.safetensors"),
        &layout,
        &theta,
        &BTreeMap::new(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Shape(_))
            && msg.contains("bad.safetensors")
            && msg.contains(&format!(
                "3 parameters given, the layout {:?} has {}",
                layout.dims, layout.len
            )),
        "{msg}"
    );
    assert!(!dir.path().join("bad.safetensors").exists());
}

/// A hand-assembled pickle in exactly the shape `torch.save(state_dict)` writes (see the
/// `pickletools` listing of the fixtures), so that views with offsets, transposed strides, shared
/// storages, 0-dim tensors and the 16- and 64-bit storage types can be checked.
#[derive(Default)]
struct Pickle {
    bytes: Vec<u8>,
    /// Whether `_rebuild_tensor_v2` is in memo slot 1 yet.
    rebuild_memoised: bool,
}

impl Pickle {
    fn str(&mut self, s: &str) {
        self.bytes.push(b'X');
        self.bytes.extend((s.len() as u32).to_le_bytes());
        self.bytes.extend(s.as_bytes());
    }
    fn int(&mut self, i: usize) {
        match i {
            0..=255 => self.bytes.extend([b'K', i as u8]),
            256..=65535 => {
                self.bytes.push(b'M');
                self.bytes.extend((i as u16).to_le_bytes());
            }
            _ => {
                self.bytes.push(b'J');
                self.bytes.extend((i as i32).to_le_bytes());
            }
        }
    }
    fn ints(&mut self, xs: &[usize]) {
        self.bytes.push(b'(');
        xs.iter().for_each(|&x| self.int(x));
        self.bytes.push(b't');
    }
    fn global(&mut self, module: &str, name: &str) {
        self.bytes.push(b'c');
        self.bytes.extend(format!("{module}\n{name}\n").as_bytes());
    }
    /// `name: _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` with
    /// `storage = (class, key, numel)`.
    fn tensor(
        &mut self,
        name: &str,
        (class, key, numel): (&str, &str, usize),
        offset: usize,
        size: &[usize],
        stride: &[usize],
    ) {
        self.str(name);
        if self.rebuild_memoised {
            self.bytes.extend([b'h', 1]);
        } else {
            self.global("torch._utils", "_rebuild_tensor_v2");
            self.bytes.extend([b'q', 1]);
            self.rebuild_memoised = true;
        }
        self.bytes.extend([b'(', b'(']);
        self.str("storage");
        self.global("torch", class);
        self.str(key);
        self.str("cpu");
        self.int(numel);
        self.bytes.extend([b't', b'Q']);
        self.int(offset);
        self.ints(size);
        self.ints(stride);
        self.bytes.extend([0x89, b'h', 0, b')', b'R', b't', b'R']);
    }
}

struct Storage<'a> {
    key: &'a str,
    bytes: Vec<u8>,
}

fn write_pth(path: &Path, body: impl FnOnce(&mut Pickle), storages: &[Storage]) {
    let mut p = Pickle::default();
    p.bytes.extend([0x80, 2]);
    p.global("collections", "OrderedDict");
    p.bytes.extend([b'q', 0, b')', b'R', b'q', 2]);
    p.bytes.push(b'(');
    body(&mut p);
    p.bytes.extend([b'u', b'.']);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut put = |name: &str, data: &[u8]| {
        zip.start_file(format!("archive/{name}"), opts).unwrap();
        zip.write_all(data).unwrap();
    };
    put("data.pkl", &p.bytes);
    put("byteorder", b"little");
    for s in storages {
        put(&format!("data/{}", s.key), &s.bytes);
    }
    zip.finish().unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn pth_views_honour_offset_stride_and_storage_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("views.pth");
    // Storage 0: s[k] = k / 2 - 1, k = 0..12, shared by two views.
    let s: Vec<f32> = (0..12).map(|k| k as f32 / 2.0 - 1.0).collect();
    let storages = [
        Storage {
            key: "0",
            bytes: f32_bytes(&s),
        },
        Storage {
            key: "1",
            bytes: bytes16(&[0x3C00, 0xC100, 0x7BFF, 0x0001]),
        },
        Storage {
            key: "2",
            bytes: bytes16(&[0x3F80, 0xC020]),
        },
        Storage {
            key: "3",
            bytes: [0.1f64, -1e300]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        },
    ];
    write_pth(
        &path,
        |p| {
            // A transposed [3, 2] view starting at element 1: t[i][j] = s[1 + i + 3 j].
            p.tensor(
                "t.transposed",
                ("FloatStorage", "0", 12),
                1,
                &[3, 2],
                &[1, 3],
            );
            p.tensor("t.tail", ("FloatStorage", "0", 12), 6, &[6], &[1]);
            // Column 1 of the [2, 2] half matrix, via stride 2.
            p.tensor("h.col", ("HalfStorage", "1", 4), 1, &[2], &[2]);
            p.tensor("b.all", ("BFloat16Storage", "2", 2), 0, &[1, 2], &[2, 1]);
            p.tensor("d.scalar", ("DoubleStorage", "3", 2), 1, &[], &[]);
        },
        &storages,
    );
    let sd = load_state_dict(&path).unwrap();
    let get = |n: &str| {
        (
            &sd.tensors[n].shape,
            &sd.tensors[n].values,
            sd.tensors[n].dtype,
        )
    };
    let s = |k: usize| s[k] as f64;
    assert_eq!(
        get("t.transposed"),
        (
            &vec![3, 2],
            &vec![s(1), s(4), s(2), s(5), s(3), s(6)],
            DType::F32
        )
    );
    assert_eq!(
        get("t.tail"),
        (&vec![6], &(6..12).map(s).collect::<Vec<_>>(), DType::F32)
    );
    assert_eq!(
        get("h.col"),
        (&vec![2], &vec![-2.5, 2f64.powi(-24)], DType::F16)
    );
    assert_eq!(get("b.all"), (&vec![1, 2], &vec![1.0, -2.5], DType::BF16));
    assert_eq!(get("d.scalar"), (&vec![], &vec![-1e300], DType::F64));
}

#[test]
fn pth_bad_views_and_storage_types_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pth");
    let storages = [Storage {
        key: "0",
        bytes: f32_bytes(&[0.0; 6]),
    }];
    write_pth(
        &path,
        |p| p.tensor("w.past_end", ("FloatStorage", "0", 6), 1, &[2, 3], &[3, 1]),
        &storages,
    );
    let msg = checkpoint_msg(load_state_dict(&path), &path);
    assert!(
        msg.contains("`w.past_end`") && msg.contains("reach past"),
        "{msg}"
    );

    write_pth(
        &path,
        |p| p.tensor("step", ("LongStorage", "0", 1), 0, &[], &[]),
        &storages,
    );
    let msg = checkpoint_msg(load_state_dict(&path), &path);
    assert!(
        msg.contains("`step`") && msg.contains("LongStorage"),
        "{msg}"
    );

    write_pth(
        &path,
        |p| p.tensor("w", ("FloatStorage", "9", 6), 0, &[6], &[1]),
        &storages,
    );
    let msg = checkpoint_msg(load_state_dict(&path), &path);
    assert!(
        msg.contains("`w`") && msg.contains("archive/data/9"),
        "{msg}"
    );

    // An opcode torch does not emit for a state dict (INT, 'I') is named with its position.
    let mut p = Pickle::default();
    p.bytes.extend([0x80, 2, b'I']);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.start_file("archive/data.pkl", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&p.bytes).unwrap();
    zip.finish().unwrap();
    let msg = checkpoint_msg(load_state_dict(&path), &path);
    assert!(msg.contains("0x49") && msg.contains("byte 2"), "{msg}");
}
