//! PyTorch `.pth` checkpoints reproduce PyTorch's probe logits through the CPU engine (eval mode,
//! packed sequences, hidden state at each sequence's true length): the upstream hidden-128 model
//! with its `fc` layer and the seed's hidden-64 model.

use recmaml::backend::{Backend, InnerLoop, Task};
use recmaml::checkpoint;
use recmaml::cpu::Cpu;
use recmaml::model::ParamLayout;
use std::path::Path;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch-pth")
}

fn expected_logits(stem: &str) -> Vec<f64> {
    let bytes = std::fs::read(dir().join("expected.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(&format!("{stem}.probe_logits")).unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F64);
    view.data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn pth_checkpoints_reproduce_probe_logits() {
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap())
            .unwrap();
    let probes: Vec<Vec<u32>> = serde_json::from_value(exp["probe_prefixes"].clone()).unwrap();
    let labels = vec![1u32; probes.len()];
    let weights = vec![1.0 / probes.len() as f32; probes.len()];
    for stem in ["upstream_hidden128_fc", "seed_hidden64_output"] {
        let path = dir().join(format!("{stem}.pth"));
        let sd = checkpoint::load_state_dict(&path).unwrap();
        let dims = checkpoint::dims_from_state_dict(&sd, &path).unwrap();
        let layout = ParamLayout::new(dims);
        let theta = checkpoint::params_from_state_dict(&sd, &layout, &path).unwrap();
        let mut cpu = Cpu::new(layout, theta).unwrap();
        let task = Task {
            support_prefixes: &probes,
            support_labels: &labels,
            support_weights: &weights,
            query_prefixes: &probes,
            query_labels: &labels,
        };
        let out = cpu
            .evaluate(&[task], &InnerLoop { lr: 0.01, steps: 1 })
            .unwrap();
        let got: Vec<f64> = out[0].zero_shot_logits.iter().map(|&x| x as f64).collect();
        let want = expected_logits(stem);
        assert_eq!(got.len(), want.len(), "{stem}: [6, 100] logits");
        let num: f64 = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let den: f64 = want.iter().map(|b| b * b).sum::<f64>().sqrt();
        assert!(num / den < 1e-5, "{stem}: relative error {}", num / den);
    }
}
