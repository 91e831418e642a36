//! `recmaml recommend`: a user's adapted top-k is what `eval`'s few-shot pass ranks for the same
//! support pairs. The episode comes from `prepare`'s pipeline over a log holding the user's
//! history plus one later event; the recommendation from the history alone. Also the JSON
//! contract of a user line, each kind of unusable history, and the file command.

use recmaml::backend::Backend;
use recmaml::config::Config;
use recmaml::cpu::Cpu;
use recmaml::data::events::{Event, LogBuilder, NO_SESSION};
use recmaml::data::pipeline::{self, PipelineConfig};
use recmaml::data::{Episode, EpisodeSet};
use recmaml::evaluate::evaluate_set;
use recmaml::model::{init_params, ModelDims, ParamLayout};
use recmaml::recommend::{
    FileOptions, Interaction, RecommendOptions, Recommendation, Recommender, UserError, UserLine,
    Vocab,
};
use recmaml::train::{inner_loop, WeightedSet};
use std::path::Path;

/// One raw event: user, session (None: the log has no sessions), item, time.
type Raw = (&'static str, Option<&'static str>, String, i64);

/// A small log: user `target` with two sessions of distinct items, the last event (its query
/// label) kept apart, and four other users so that every item is in the vocabulary.
fn log_events(sessions: bool) -> (Vec<Raw>, Raw) {
    let s = |x: &'static str| sessions.then_some(x);
    let mut ev: Vec<Raw> = Vec::new();
    let item = |i: usize| format!("i{i:02}");
    // The target: session a (t = 100..), then session b (t = 1000..), times strictly increasing
    // except one tie that prepare drops; an immediate repeat that prepare collapses.
    let a = [3, 7, 1, 7, 7, 12, 5];
    for (j, &it) in a.iter().enumerate() {
        ev.push(("target", s("a"), item(it), 100 + 10 * j as i64));
    }
    let b = [9, 2, 14, 0, 11, 6, 8];
    let mut t = 1000;
    for (j, &it) in b.iter().enumerate() {
        ev.push(("target", s("b"), item(it), t));
        t += if j == 2 { 0 } else { 7 };
    }
    let query: Raw = ("target", s("b"), item(4), t + 5);
    for u in 0..4usize {
        let name: &'static str = ["u1", "u2", "u3", "u4"][u];
        for j in 0..8usize {
            ev.push((name, s("x"), item((u * 5 + j * 3) % 16), 50 + j as i64));
        }
    }
    (ev, query)
}

/// The episode prepare makes for the target from `events` (K support, Q = 1) and the vocabulary.
fn prepared_episode(events: &[Raw], cfg: &PipelineConfig) -> (Episode, Vec<String>) {
    let mut b = LogBuilder::default();
    for (u, s, it, ts) in events {
        let user = b.user(u.as_bytes()).unwrap();
        let session = s.map_or(NO_SESSION, |s| b.session(user, s.as_bytes()).unwrap());
        let item = b.item(it.as_bytes()).unwrap();
        b.push(Event {
            user,
            session,
            item,
            ts: *ts,
        });
    }
    let log = b.finish(Path::new("test.csv")).unwrap();
    let p = pipeline::run(&log, cfg).unwrap();
    let eps = p.episodes(2);
    let ep = eps.into_iter().find(|e| e.user_id == "target").unwrap();
    (ep, p.vocab)
}

fn line_of(events: &[Raw], user: &str) -> UserLine {
    UserLine {
        user: user.into(),
        interactions: events
            .iter()
            .filter(|e| e.0 == user)
            .map(|(_, s, it, ts)| Interaction {
                item: it.clone(),
                ts: *ts,
                session: s.map(str::to_string),
            })
            .collect(),
    }
}

fn config(sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(None, &sets).unwrap()
}

fn model(n_items: usize) -> (ParamLayout, Vec<f32>) {
    let layout = ParamLayout::new(ModelDims {
        n_items,
        embed_dim: 8,
        hidden_dim: 12,
    });
    let theta = init_params(&layout, 7);
    (layout, theta)
}

/// Item ids `1..V` by descending logit, lower id first on ties: the ranking eval's `rank_of`
/// counts, written out here independently of `recommend::top_k`.
fn ranking(logits: &[f32]) -> Vec<u32> {
    let mut ids: Vec<u32> = (1..logits.len() as u32).collect();
    ids.sort_by(|&a, &b| {
        logits[b as usize]
            .partial_cmp(&logits[a as usize])
            .unwrap()
            .then(a.cmp(&b))
    });
    ids
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let m = logits[1..].iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let z: f64 = logits[1..].iter().map(|&l| (l as f64 - m).exp()).sum();
    logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if i == 0 {
                0.0
            } else {
                (l as f64 - m).exp() / z
            }
        })
        .collect()
}

fn check_equals_eval(sessions: bool, gap: Option<i64>, scheme: &[&str]) {
    let (mut events, query) = log_events(sessions);
    let k = 4;
    let pcfg = PipelineConfig {
        k,
        q: 1,
        max_prefix_len: 5,
        split: [0.0, 0.0, 1.0],
        session_gap: gap,
        ..PipelineConfig::default()
    };
    let history = line_of(&events, "target");
    events.push(query.clone());
    let (ep, vocab) = prepared_episode(&events, &pcfg);
    let v = vocab.len() + 1;
    let mut sets = vec!["maml.inner_lr=0.5", "maml.inner_steps=3", "run.backend=cpu"];
    sets.extend_from_slice(scheme);
    let cfg = config(&sets);
    let (layout, theta) = model(v);

    // The eval path: the episode with its weights, through `evaluate_set` and the backend.
    let set = EpisodeSet {
        path: "episodes.parquet".into(),
        episodes: vec![ep.clone()],
        k,
        q: 1,
        n_items: v,
    };
    let ws = WeightedSet::new(set, &cfg).unwrap();
    let mut cpu = Cpu::new(layout.clone(), theta.clone()).unwrap();
    let (_, records) = evaluate_set(&mut cpu, &ws, &inner_loop(&cfg), None).unwrap();
    let evals = cpu.evaluate(&[ws.task(0)], &inner_loop(&cfg)).unwrap();

    // The recommend path, from the history alone.
    let opts = RecommendOptions {
        top_k: v - 1,
        support_k: k,
        max_prefix_len: 5,
        session_gap: gap,
        ..RecommendOptions::default()
    };
    let backend = Box::new(Cpu::new(layout, theta).unwrap());
    let names = Vocab::from_names(Path::new("vocab.json"), vocab.clone());
    let mut rec = Recommender::new(backend, names, &cfg, opts).unwrap();
    let task = rec.task_of(&history).unwrap();
    assert_eq!(task.support_prefixes, ep.support_prefixes);
    assert_eq!(task.support_labels, ep.support_labels);
    assert_eq!(task.support_weights, ws.weights[0]);
    assert_eq!(task.query_prefixes, ep.query_prefixes);
    let answer = rec.recommend(&[history]).unwrap().pop().unwrap().unwrap();
    assert!(answer.adapted);
    assert_eq!(answer.support_pairs, k);

    let label = &vocab[ep.query_labels[0] as usize - 1];
    assert_eq!(label, &query.2);
    let r = &records[0];
    for (got, logits, top1, rank) in [
        (
            &answer.few_shot,
            &evals[0].few_shot_logits,
            r.few_shot_top1[0],
            r.few_shot_rank[0],
        ),
        (
            &answer.zero_shot,
            &evals[0].zero_shot_logits,
            r.zero_shot_top1[0],
            r.zero_shot_rank[0],
        ),
    ] {
        let names: Vec<&str> = got.iter().map(|s| s.item.as_str()).collect();
        let want: Vec<&str> = ranking(logits)
            .iter()
            .map(|&id| vocab[id as usize - 1].as_str())
            .collect();
        assert_eq!(names, want);
        assert_eq!(names[0], vocab[top1 as usize - 1]);
        assert_eq!(
            names.iter().position(|n| *n == label.as_str()).unwrap() + 1,
            rank
        );
        let p = softmax(logits);
        for s in got {
            let id = vocab.iter().position(|n| *n == s.item).unwrap() + 1;
            assert!(
                (s.score as f64 - p[id]).abs() < 1e-6,
                "{} {} {}",
                s.item,
                s.score,
                p[id]
            );
        }
    }
    // Adaptation changed the scores: the comparison above is not of two equal lists.
    assert_ne!(answer.few_shot, answer.zero_shot);
}

#[test]
fn adapted_top_k_is_evals_few_shot_ranking_with_sessions() {
    check_equals_eval(
        true,
        None,
        &["recency.weighting_scheme=exponential", "recency.lambda=1.5"],
    );
}

#[test]
fn adapted_top_k_is_evals_few_shot_ranking_with_time_weights_and_a_session_gap() {
    check_equals_eval(
        false,
        Some(200),
        &["recency.weighting_scheme=time", "recency.tau=30"],
    );
}

#[test]
fn adapted_top_k_is_evals_few_shot_ranking_without_sessions() {
    check_equals_eval(false, None, &["recency.weighting_scheme=linear"]);
}

/// A recommender over a fresh model of items `i00..i15`.
fn small(opts: RecommendOptions) -> Recommender {
    let vocab: Vec<String> = (0..16).map(|i| format!("i{i:02}")).collect();
    let (layout, theta) = model(17);
    let cfg = config(&["maml.inner_lr=0.5", "run.backend=cpu"]);
    let backend = Box::new(Cpu::new(layout, theta).unwrap());
    Recommender::new(
        backend,
        Vocab::from_names(Path::new("v"), vocab),
        &cfg,
        opts,
    )
    .unwrap()
}

fn user(items: &[&str]) -> UserLine {
    UserLine {
        user: "u".into(),
        interactions: items
            .iter()
            .enumerate()
            .map(|(t, it)| Interaction {
                item: it.to_string(),
                ts: 10 * t as i64,
                session: None,
            })
            .collect(),
    }
}

#[test]
fn unknown_items_are_skipped_and_counted() {
    let mut rec = small(RecommendOptions::default());
    let with = user(&["i01", "zz", "i02", "i03", "yy"]);
    let without = user(&["i01", "i02", "i03"]);
    let a = rec.recommend(&[with, without]).unwrap();
    let (a, b) = (a[0].as_ref().unwrap(), a[1].as_ref().unwrap());
    assert_eq!(a.unknown_items, 2);
    assert_eq!(b.unknown_items, 0);
    assert_eq!(a.support_pairs, 2);
    assert_eq!((&a.zero_shot, &a.few_shot), (&b.zero_shot, &b.few_shot));
}

#[test]
fn exclude_seen_leaves_the_history_out() {
    let opts = RecommendOptions {
        top_k: 16,
        exclude_seen: true,
        ..RecommendOptions::default()
    };
    let mut rec = small(opts);
    let a = rec.recommend(&[user(&["i01", "i05", "i09"])]).unwrap();
    let a = a[0].as_ref().unwrap();
    for list in [&a.zero_shot, &a.few_shot] {
        assert_eq!(list.len(), 13);
        assert!(list
            .iter()
            .all(|s| !["i01", "i05", "i09"].contains(&s.item.as_str())));
    }
}

#[test]
fn a_history_without_pairs_gets_the_zero_shot_answer() {
    let mut rec = small(RecommendOptions::default());
    let a = rec.recommend(&[user(&["i04"])]).unwrap();
    let a = a[0].as_ref().unwrap();
    assert!(!a.adapted);
    assert_eq!(a.support_pairs, 0);
    assert_eq!(a.few_shot, a.zero_shot);
    assert_eq!(a.zero_shot.len(), 10);
}

#[test]
fn unusable_histories_fail_alone() {
    let opts = RecommendOptions {
        max_history: 4,
        ..RecommendOptions::default()
    };
    let mut rec = small(opts);
    let mut mixed = user(&["i01", "i02"]);
    mixed.interactions[1].session = Some("s".into());
    let mut nameless = user(&["i01"]);
    nameless.user.clear();
    let batch = [
        user(&[]),
        user(&["i01", "i02", "i03", "i04", "i05"]),
        user(&["zz", "yy"]),
        mixed,
        nameless,
        user(&["i01", "i02"]),
    ];
    let a = rec.recommend(&batch).unwrap();
    let errs: Vec<Option<UserError>> = a.iter().map(|r| r.clone().err()).collect();
    assert_eq!(
        errs,
        vec![
            Some(UserError::EmptyHistory),
            Some(UserError::TooLong { n: 5, max: 4 }),
            Some(UserError::NoKnownItems { unknown: 2 }),
            Some(UserError::MixedSessions { index: 1 }),
            Some(UserError::EmptyUser),
            None,
        ]
    );
}

#[test]
fn the_json_contract_of_a_user_line() {
    let ok: UserLine = serde_json::from_str(
        r#"{"user":"u7","interactions":[{"item":"a","ts":1733220000},
            {"item":"b","ts":"2024-12-03T10:00:05Z","session":"s"},{"item":"c","ts":17.9}]}"#,
    )
    .unwrap();
    assert_eq!(ok.interactions[0].ts, 1_733_220_000);
    // 2024-12-03 is day 20060 since 1970-01-01: 20060 * 86400 + 10 h + 5 s.
    assert_eq!(ok.interactions[1].ts, 20060 * 86400 + 36_005);
    assert_eq!(ok.interactions[1].session.as_deref(), Some("s"));
    assert_eq!(ok.interactions[2].ts, 17);
    let bad = |s: &str| serde_json::from_str::<UserLine>(s).unwrap_err().to_string();
    assert!(bad(r#"{"user":"u","interactions":[],"extra":1}"#).contains("unknown field `extra`"));
    assert!(
        bad(r#"{"user":"u","interactions":[{"item":"a","ts":1,"when":2}]}"#)
            .contains("unknown field `when`")
    );
    assert!(bad(r#"{"interactions":[]}"#).contains("missing field `user`"));
    assert!(
        bad(r#"{"user":"u","interactions":[{"item":"a","ts":"soon"}]}"#)
            .contains("`soon` is not a timestamp")
    );
    assert!(
        bad(r#"{"user":"u","interactions":[{"item":"a","ts":true}]}"#).contains("Unix seconds")
    );
}

#[test]
fn the_file_command_answers_every_line_or_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vocab: Vec<String> = (0..16).map(|i| format!("i{i:02}")).collect();
    let vocab_file = dir.path().join("item2id.json");
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), (i + 1).into()))
        .collect();
    std::fs::write(&vocab_file, serde_json::to_string(&map).unwrap()).unwrap();
    let (layout, theta) = model(17);
    let model_file = dir.path().join("m.safetensors");
    recmaml::checkpoint::save_params(&model_file, &layout, &theta, &Default::default()).unwrap();
    let users = [
        user(&["i01", "i02", "i03"]),
        user(&[]),
        user(&["i07", "q", "i08"]),
        user(&["p", "q"]),
    ];
    let input = dir.path().join("users.jsonl");
    let mut text = String::new();
    for u in &users {
        text.push_str(&serde_json::to_string(u).unwrap());
        text.push_str("\n\n");
    }
    std::fs::write(&input, &text).unwrap();
    let cfg = config(&["maml.inner_lr=0.5", "run.backend=cpu"]);
    let out = dir.path().join("out").join("recs.jsonl");
    let opts = FileOptions {
        model: model_file,
        vocab: dir.path().to_path_buf(),
        input: input.clone(),
        out: out.clone(),
        batch: 2,
        recommend: RecommendOptions::default(),
        quiet: true,
    };
    let s = recmaml::recommend::recommend_file(&cfg, &opts).unwrap();
    assert_eq!(
        (s.users, s.recommended, s.failed, s.unknown_items),
        (4, 2, 2, 3)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let mut rec = small(RecommendOptions::default());
    let direct = rec.recommend(&users).unwrap();
    let got: Recommendation = serde_json::from_value(lines[0].clone()).unwrap();
    assert_eq!(&got, direct[0].as_ref().unwrap());
    let got: Recommendation = serde_json::from_value(lines[2].clone()).unwrap();
    assert_eq!(&got, direct[2].as_ref().unwrap());
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("history is empty"));
    assert!(lines[3]["error"]
        .as_str()
        .unwrap()
        .contains("none of the 2 interacted items"));

    // A broken line: the error names the file and line, and no output appears.
    std::fs::write(
        &input,
        format!("{text}{{\"user\": \"x\", \"interactions\": [}}\n"),
    )
    .unwrap();
    let out2 = dir.path().join("recs2.jsonl");
    let e = recmaml::recommend::recommend_file(
        &cfg,
        &FileOptions {
            out: out2.clone(),
            ..opts
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("users.jsonl, row 9"), "{e}");
    assert!(!out2.exists());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().ends_with(".tmp")),
        "{names:?}"
    );
}
