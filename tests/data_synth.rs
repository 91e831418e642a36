//! `synth`: both formats give the same episodes through `prepare`; the same seed gives the same
//! bytes; users move among a few enrolled courses; and the default log against the published
//! statistics of the real XuetangX log.

use recmaml::data::pipeline::{self, PipelineConfig, Prepared};
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
    let json = synth(dir.path(), "log.json", SynthFormat::Xuetangx, 12_000, 5);
    let csv = synth(dir.path(), "log.csv", SynthFormat::Interactions, 12_000, 5);
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
    let read = |p: &Path| std::fs::read(p).unwrap();
    for (format, ext) in [
        (SynthFormat::Xuetangx, "json"),
        (SynthFormat::Interactions, "csv"),
    ] {
        let a = synth(dir.path(), &format!("a.{ext}"), format, 2_000, 1);
        let b = synth(dir.path(), &format!("b.{ext}"), format, 2_000, 1);
        let c = synth(dir.path(), &format!("c.{ext}"), format, 2_000, 2);
        assert_eq!(read(&a), read(&b));
        assert_ne!(read(&a), read(&c));
    }
}

/// A prepared synthetic log of `users` users (seed 3), in memory.
fn prepared(users: usize) -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let csv = synth(dir.path(), "log.csv", SynthFormat::Interactions, users, 3);
    let log = prepare::read_log(&csv, Format::Interactions, true).unwrap();
    pipeline::run(&log, &PipelineConfig::default()).unwrap()
}

/// Median of `v` (upper median).
fn median(mut v: Vec<usize>) -> usize {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn users_move_among_a_few_enrolled_courses_that_grow_over_time() {
    let p = prepared(20_000);
    let s = &p.stages;
    // Labels that are courses the user touched before.
    let revisit = s.pairs_revisit as f64 / s.pairs as f64;
    // Interleaving inside a session (A, B, A): the label is already in its own prefix.
    let pairs: Vec<_> = p.pairs.iter().flatten().collect();
    let own = pairs.iter().filter(|q| q.prefix.contains(&q.label)).count() as f64;
    let own = own / pairs.len() as f64;
    // Users with an episode's worth of pairs: how many distinct courses, and whether all their
    // pairs show more courses than the first half of them (the set grows).
    let courses = |ps: &[&pipeline::Pair]| {
        let mut c: Vec<u32> = ps
            .iter()
            .flat_map(|q| q.prefix.iter().copied().chain([q.label]))
            .collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    };
    // Drift: the topic of a user's first course is that of their second more often than that of
    // their last (courses in order of first appearance in their time-sorted pairs).
    let topic = |id: u32| topic_of(&p.vocab[id as usize - 1]).unwrap();
    let (mut distinct, mut grew) = (Vec::new(), 0usize);
    let (mut near, mut far, mut n) = (0usize, 0usize, 0usize);
    for user in pairs.chunk_by(|a, b| a.user == b.user) {
        if user.len() >= 15 {
            let all = courses(user);
            distinct.push(all);
            grew += usize::from(all > courses(&user[..user.len() / 2]));
            let mut seen: Vec<u32> = Vec::new();
            for c in user
                .iter()
                .flat_map(|q| q.prefix.iter().copied().chain([q.label]))
            {
                if !seen.contains(&c) {
                    seen.push(c);
                }
            }
            if seen.len() >= 3 {
                n += 1;
                near += usize::from(topic(seen[0]) == topic(seen[1]));
                far += usize::from(topic(seen[0]) == topic(*seen.last().unwrap()));
            }
        }
    }
    let (near, far) = (near as f64 / n as f64, far as f64 / n as f64);
    let heavy = distinct.len();
    let m = median(distinct);
    println!(
        "revisit {revisit:.3}, own prefix {own:.3}, {heavy} users with 15 pairs: median {m} \
         courses, {grew} grew; same topic as the first course: second {near:.3}, last {far:.3}"
    );
    assert!(revisit > 0.5, "revisit share {revisit:.3}");
    assert!(own > 0.3, "own-prefix share {own:.3}");
    assert!(heavy >= 100, "{heavy} users with 15 pairs");
    assert!((2..=6).contains(&m), "median distinct courses {m}");
    assert!(grew * 2 > heavy, "{grew} of {heavy} users' sets grew");
    assert!(near > far + 0.05, "second {near:.3} vs last {far:.3}");
}

/// The statistics of the real XuetangX log (`../shared/docs/upstream-pipeline.md`), as the
/// default log gives them; printed as a table with `--nocapture` (the README's table).
#[test]
fn the_default_log_has_the_real_logs_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let csv = synth(
        dir.path(),
        "log.csv",
        SynthFormat::Interactions,
        synth::DEFAULT_USERS,
        synth::DEFAULT_SEED,
    );
    let out = dir.path().join("p");
    let (report, eps) = prep(&csv, Format::Interactions, &out);
    let s = &report.stages;
    let pair_users = s.users_with_pairs as f64 / s.users as f64;
    let sessions = s.sessions as f64 / s.users as f64;
    let short: usize = report.splits.iter().map(|x| x.counts.users_too_short).sum();
    let long = 1.0 - short as f64 / s.users_with_pairs as f64;
    // Popularity: the most frequent train label (lowest id on ties), scored on the test queries.
    let train = recmaml::data::read_pair_file(&out.join("pairs_train.parquet"), None).unwrap();
    let mut count = vec![0usize; train.n_items];
    for &y in &train.labels {
        count[y as usize] += 1;
    }
    let top = (0..count.len())
        .max_by_key(|&i| (count[i], usize::MAX - i))
        .unwrap() as u32;
    let queries: Vec<u32> = eps[2].iter().flat_map(|e| e.query_labels.clone()).collect();
    let pop = queries.iter().filter(|&&y| y == top).count() as f64 / queries.len() as f64;
    let pl = &s.prefix_len;
    let n: Vec<usize> = eps.iter().map(Vec::len).collect();
    println!("| statistic | real XuetangX | synthetic default |");
    println!("|---|---|---|");
    println!(
        "| users with at least one pair | 34.0% | {:.1}% |",
        100.0 * pair_users
    );
    println!("| sessions per user | 2.57 | {sessions:.2} |");
    println!(
        "| prefix length p50 / p90 / p99 / max | 3 / 19 / 79 / 432 | {} / {} / {} / {} |",
        pl.p50, pl.p90, pl.p99, pl.max
    );
    println!(
        "| pair-users with at least K+Q pairs | about 4% | {:.1}% |",
        100.0 * long
    );
    println!(
        "| popularity Acc@1 on test episodes | 1.73% | {:.2}% |",
        100.0 * pop
    );
    println!(
        "| train / val / test episodes | 47,357 / 341 / 313 | {} / {} / {} |",
        n[0], n[1], n[2]
    );
    println!(
        "| (users, courses, sessions, pairs) | 182,755, 1,518, 469,286, 281,979 | {}, {}, {}, {} |",
        s.users, s.items, s.sessions, s.pairs
    );
    println!(
        "| pairs whose label the user touched before | - | {:.1}% |",
        100.0 * report.pairs_revisit_share
    );
    for sp in &report.splits[1..] {
        println!(
            "| {} query labels among support labels / support (+prefixes) / own prefix | - | {:.1}% / {:.1}% / {:.1}% |",
            sp.split,
            100.0 * sp.query_in_support_labels_share,
            100.0 * sp.query_in_support_share,
            100.0 * sp.query_in_own_prefix_share
        );
    }
    assert!((0.30..0.38).contains(&pair_users), "{pair_users}");
    assert!((2.3..2.9).contains(&sessions), "{sessions}");
    assert!(
        (2..=4).contains(&pl.p50) && (15..=24).contains(&pl.p90) && (60..=100).contains(&pl.p99),
        "{pl:?}"
    );
    assert!((0.03..0.07).contains(&long), "{long}");
    assert!((0.008..0.03).contains(&pop), "{pop}");
    assert!(n[1] >= 300 && n[2] >= 300 && n[0] >= 20_000, "{n:?}");
    assert_eq!(s.items, synth::DEFAULT_ITEMS);
}
