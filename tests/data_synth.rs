//! `synth`: both formats give the same episodes through `prepare`; the default sizes; and the
//! properties the generator promises (prefix lengths, drift that makes recency matter).

use recmaml::data::prepare::{self, Format, PrepareOptions, PrepareReport};
use recmaml::data::synth::{self, topic_of, SynthFormat, SynthOptions};
use recmaml::data::{read_episodes, Episode};
use std::path::Path;

fn synth(
    dir: &Path,
    name: &str,
    format: SynthFormat,
    users: usize,
    seed: u64,
) -> std::path::PathBuf {
    let out = dir.join(name);
    let args = SynthOptions {
        out: out.clone(),
        format,
        users,
        items: synth::DEFAULT_ITEMS,
        seed,
        events_per_visit: synth::DEFAULT_EVENTS_PER_VISIT,
        quiet: true,
    };
    synth::run(&args).unwrap();
    out
}

fn prep(input: &Path, format: Format, out: &Path) -> (PrepareReport, Vec<Vec<Episode>>) {
    let report = prepare::run(&PrepareOptions::new(input, format, out)).unwrap();
    let eps = ["train", "val", "test"]
        .iter()
        .map(|s| {
            read_episodes(
                &out.join(format!("episodes/episodes_{s}_K5_Q10.parquet")),
                None,
            )
            .unwrap()
            .episodes
        })
        .collect();
    (report, eps)
}

#[test]
fn xuetangx_file_gives_the_same_episodes_as_the_same_events_as_interactions() {
    let dir = tempfile::tempdir().unwrap();
    let json = synth(dir.path(), "log.json", SynthFormat::Xuetangx, 1500, 5);
    let csv = synth(dir.path(), "log.csv", SynthFormat::Interactions, 1500, 5);
    let (rx, ex) = prep(&json, Format::Xuetangx, &dir.path().join("x"));
    let (ri, ei) = prep(&csv, Format::Interactions, &dir.path().join("i"));
    assert!(ex.iter().all(|e| !e.is_empty()), "every split has episodes");
    assert_eq!(ex, ei);
    // The JSON also held events of filtered types; after the filter the counts agree.
    assert!(rx.stages.events_read > rx.stages.events_kept as u64);
    assert_eq!(rx.stages.events_kept as u64, ri.stages.events_read);
    let (mut sx, mut si) = (rx.stages.clone(), ri.stages.clone());
    sx.events_read = 0;
    si.events_read = 0;
    assert_eq!(sx, si);
    let vx = std::fs::read_to_string(dir.path().join("x/vocab/course2id.json")).unwrap();
    let vi = std::fs::read_to_string(dir.path().join("i/vocab/item2id.json")).unwrap();
    assert_eq!(vx, vi);
}

#[test]
fn same_seed_same_file_other_seed_other_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = synth(dir.path(), "a.json", SynthFormat::Xuetangx, 200, 1);
    let b = synth(dir.path(), "b.json", SynthFormat::Xuetangx, 200, 1);
    let c = synth(dir.path(), "c.json", SynthFormat::Xuetangx, 200, 2);
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
}

#[test]
fn default_sizes_give_thousands_of_train_and_hundreds_of_eval_episodes_with_drift() {
    let dir = tempfile::tempdir().unwrap();
    let csv = synth(
        dir.path(),
        "log.csv",
        SynthFormat::Interactions,
        synth::DEFAULT_USERS,
        20_260_107,
    );
    let out = dir.path().join("p");
    let (report, eps) = prep(&csv, Format::Interactions, &out);
    let n: Vec<usize> = eps.iter().map(Vec::len).collect();
    assert!(n[0] >= 5_000, "train episodes {n:?}");
    assert!(
        (150..1_000).contains(&n[1]) && (150..1_000).contains(&n[2]),
        "{n:?}"
    );
    assert_eq!(report.stages.items, synth::DEFAULT_ITEMS);
    let pl = &report.stages.prefix_len;
    assert!(
        (2..=5).contains(&pl.p50) && (12..=30).contains(&pl.p90),
        "{pl:?}"
    );

    // Drift: a query label shares its topic with the newest support label more often than
    // with the oldest one.
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("vocab/item2id.json")).unwrap())
            .unwrap();
    let mut topic = vec![usize::MAX; vocab.len() + 1];
    for (name, id) in &vocab {
        topic[id.as_u64().unwrap() as usize] = topic_of(name).unwrap();
    }
    let (mut newest, mut oldest, mut total) = (0usize, 0usize, 0usize);
    for e in &eps[0] {
        let t_new = topic[*e.support_labels.last().unwrap() as usize];
        let t_old = topic[e.support_labels[0] as usize];
        for &l in &e.query_labels {
            total += 1;
            newest += usize::from(topic[l as usize] == t_new);
            oldest += usize::from(topic[l as usize] == t_old);
        }
    }
    let (fn_, fo) = (newest as f64 / total as f64, oldest as f64 / total as f64);
    assert!(fn_ > fo + 0.03, "newest {fn_:.3} vs oldest {fo:.3}");
}
