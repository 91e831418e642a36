//! Output folders, through the `recmaml` binary: one run owns its folder (a second process is
//! refused, naming the holder's pid), a failed run leaves the folder as it was, temporaries of
//! stopped runs are removed at the next start, `prepare` never replaces a folder holding its
//! input, and runs that would compute nothing (no iterations, empty episode files) are errors.

mod common;

use common::{snapshot, text};

use recmaml::data::write_episodes;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LOCK_FILE: &str = ".recmaml.lock";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recmaml"))
}

fn episodes() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch/exp-tiny/episodes.parquet")
        .display()
        .to_string()
}

fn fails(o: Output) -> String {
    let t = text(&o);
    assert!(!o.status.success(), "succeeded: {t}");
    assert!(!t.contains("panicked"), "{t}");
    t
}

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    t
}

/// The arguments of `recmaml COMMAND --config DIR/base.toml --out OUT`: a small model on the
/// exp-tiny episodes (train and validation), two tasks per meta-batch, 6 iterations with
/// validation and a checkpoint every 2; then `sets` and `flags`.
fn args(command: &str, dir: &Path, out: &Path, sets: &[&str], flags: &[&str]) -> Vec<String> {
    let cfg = dir.join("base.toml");
    std::fs::write(&cfg, "[model]\nembed_dim = 8\nhidden_dim = 6\n").unwrap();
    let mut a = vec![
        command.to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    let base = [
        format!("data.train={}", episodes()),
        format!("data.val={}", episodes()),
        "maml.meta_batch_size=2".into(),
        "maml.num_meta_iterations=6".into(),
        "maml.val_every=2".into(),
        "maml.checkpoint_every=2".into(),
    ];
    for s in base.iter().map(String::as_str).chain(sets.iter().copied()) {
        a.extend(["--set".to_string(), s.to_string()]);
    }
    a.extend(flags.iter().map(|f| f.to_string()));
    a
}

fn train(dir: &Path, out: &Path, sets: &[&str], flags: &[&str]) -> Output {
    bin()
        .args(args("train", dir, out, sets, flags))
        .output()
        .unwrap()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A small interactions log: 12 users with 8 events each over 6 items.
fn write_log(path: &Path) {
    let mut s = String::from("user_id,item_id,timestamp\n");
    for u in 0..12 {
        for t in 0..8 {
            s += &format!("u{u},i{},{}\n", (u + t * (u % 3 + 1)) % 6, 100 * t + u);
        }
    }
    std::fs::write(path, s).unwrap();
}

/// Waits until `holder` has locked `out` (its pid in the lock file).
fn wait_for_lock(holder: &mut Child, out: &Path) {
    let want = format!("{}\n", holder.id());
    let start = Instant::now();
    while std::fs::read_to_string(out.join(LOCK_FILE)).ok().as_deref() != Some(want.as_str()) {
        if let Some(status) = holder.try_wait().unwrap() {
            panic!("the holder exited ({status}) before it locked the folder");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the holder never locked {}",
            out.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut c = bin()
        .arg("--version")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn a_second_run_on_a_held_folder_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = dir.join("run");
    // The holder: a training run far too long to end during the test.
    let mut holder = bin()
        .args(args(
            "train",
            dir,
            &out,
            &[
                "maml.num_meta_iterations=1000000000",
                "maml.val_every=0",
                "maml.checkpoint_every=0",
            ],
            &[],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lock(&mut holder, &out);
    let pid = holder.id();
    let log = dir.join("log.csv");
    write_log(&log);
    let others: Vec<(&str, Vec<String>)> = vec![
        ("train", args("train", dir, &out, &[], &[])),
        ("train --force", args("train", dir, &out, &[], &["--force"])),
        (
            "train --resume",
            args("train", dir, &out, &[], &["--resume"]),
        ),
        (
            "pretrain",
            args(
                "pretrain",
                dir,
                &out,
                &["data.pairs_train=pairs.parquet"],
                &[],
            ),
        ),
        (
            "matrix",
            args(
                "matrix",
                dir,
                &out,
                &[&format!("data.test={}", episodes())],
                &[],
            ),
        ),
        (
            "prepare --force",
            [
                "prepare",
                "--input",
                log.to_str().unwrap(),
                "--format",
                "interactions",
                "--out",
                out.to_str().unwrap(),
                "--force",
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    for (what, a) in others {
        let t = fails(bin().args(&a).output().unwrap());
        assert!(
            t.contains(&format!("pid {pid}"))
                && t.contains("in use")
                && t.contains(&out.display().to_string()),
            "{what}: {t}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join(LOCK_FILE)).unwrap(),
            format!("{pid}\n"),
            "{what} touched the holder's lock"
        );
    }
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder stopped while the others were refused"
    );
    // Killed, the holder leaves its lock file and an empty `checkpoints/` (it had written
    // nothing else); the OS has released the lock, so a plain new run takes the folder over, and
    // removes the lock file when it ends.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(names(&out), [LOCK_FILE, "checkpoints"]);
    ok(train(dir, &out, &[], &[]));
    assert!(out.join("final.safetensors").is_file());
    assert!(!out.join(LOCK_FILE).exists());
}

#[test]
fn a_run_that_fails_before_its_first_checkpoint_leaves_the_folder_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Adam moves each weight by about outer_lr per step: with 1e37 the weights overflow within a
    // few steps, after the validation of the starting weights wrote best.safetensors; no
    // checkpoint is due before.
    let diverging = [
        "maml.outer_lr=1e37",
        "maml.grad_clip=0",
        "maml.num_meta_iterations=50",
        "maml.checkpoint_every=1000",
    ];
    // A folder the run makes: gone again.
    let out = dir.join("new");
    let t = fails(train(dir, &out, &diverging, &[]));
    assert!(t.contains("non-finite meta-loss at iteration"), "{t}");
    assert!(!out.exists(), "left {:?}", names(&out));

    // A folder that was there, with the user's own file: only that file is left, and a plain run
    // then starts there.
    let out = dir.join("used");
    std::fs::create_dir(&out).unwrap();
    let t = fails(train(dir, &out, &diverging, &[]));
    assert!(t.contains("non-finite meta-loss"), "{t}");
    assert_eq!(names(&out), Vec::<String>::new());
    ok(train(dir, &out, &[], &[]));
    assert!(out.join("final.safetensors").is_file());

    // Over a previous run with --force: the old outputs are gone (as --force says), the user's
    // file stays, and nothing of the failed run is left.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let t = fails(train(dir, &out, &diverging, &["--force"]));
    assert!(t.contains("non-finite meta-loss"), "{t}");
    assert_eq!(names(&out), ["notes.txt"]);
}

#[test]
fn temporaries_of_stopped_runs_are_removed_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = dir.join("run");
    ok(train(dir, &out, &[], &["--stop-after", "3"]));
    // What a run killed while writing leaves (the names `recmaml` gives its temporaries), and one
    // of a process that is still running (this test), which must stay.
    let dead = dead_pid();
    let me = std::process::id();
    let stale = [
        out.join(format!(".best.safetensors.tmp-{dead}.AbCdEf")),
        out.join(format!(
            "checkpoints/.iter_000004.safetensors.tmp-{dead}.XyZ123"
        )),
    ];
    let live = out.join(format!(".results.json.tmp-{me}.Q1w2E3"));
    for p in stale.iter().chain([&live]) {
        std::fs::write(p, "half a file").unwrap();
    }
    let t = ok(train(dir, &out, &[], &["--resume"]));
    for p in &stale {
        assert!(!p.exists(), "{} left: {t}", p.display());
        assert!(t.contains(&p.display().to_string()), "{t}");
    }
    assert!(live.exists(), "removed a live process's temporary");
    assert!(out.join("final.safetensors").is_file());

    // `prepare`'s temporary folder beside its output folder.
    let log = dir.join("log.csv");
    write_log(&log);
    let data = dir.join("data");
    let stale_dir = dir.join(format!(".data.tmp-{dead}"));
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("pairs_train.parquet"), "half a file").unwrap();
    let prepare = |extra: &[&str]| {
        let mut a = vec![
            "prepare",
            "--input",
            log.to_str().unwrap(),
            "--format",
            "interactions",
            "--out",
            data.to_str().unwrap(),
            "--K",
            "2",
            "--Q",
            "2",
        ];
        a.extend(extra);
        bin().args(a).output().unwrap()
    };
    ok(prepare(&[]));
    assert!(!stale_dir.exists());
    assert!(data.join("prepare_report.json").is_file());
    assert!(!data.join(LOCK_FILE).exists());
    // Replacing it with --force also leaves no lock file.
    ok(prepare(&["--force"]));
    assert!(!data.join(LOCK_FILE).exists());

    // `synth`'s temporary file beside its output file.
    let synth = dir.join("synth.csv");
    let stale_file = dir.join(format!(".synth.csv.tmp-{dead}"));
    std::fs::write(&stale_file, "half a log").unwrap();
    let o = bin()
        .args([
            "synth",
            "--out",
            synth.to_str().unwrap(),
            "--users",
            "30",
            "--items",
            "20",
        ])
        .args(["--quiet"])
        .output()
        .unwrap();
    ok(o);
    assert!(synth.is_file() && !stale_file.exists());
}

#[test]
fn prepare_refuses_an_input_inside_the_folder_it_replaces() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_log(&data.join("log.csv"));
    let before = snapshot(&data);
    // The same file named through another path: compared canonicalised.
    let input = tmp.path().join("data/../data/./log.csv");
    for flags in [vec!["--force"], vec![]] {
        let mut a = vec![
            "prepare",
            "--input",
            input.to_str().unwrap(),
            "--format",
            "interactions",
            "--out",
            data.to_str().unwrap(),
        ];
        a.extend(&flags);
        let t = fails(bin().args(a).output().unwrap());
        assert!(
            t.contains("--out") && t.contains("lies inside") && t.contains("log.csv"),
            "{flags:?}: {t}"
        );
        assert!(snapshot(&data) == before, "{flags:?} changed the folder");
    }
}

#[test]
fn runs_that_would_compute_nothing_are_errors_naming_the_key_or_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let empty = dir.join("empty.parquet");
    write_episodes(&empty, &[]).unwrap();
    let empty_s = empty.display().to_string();
    let cases = [
        (
            vec!["maml.num_meta_iterations=0".to_string()],
            "maml.num_meta_iterations",
        ),
        (vec![format!("data.val={empty_s}")], "data.val"),
        (vec![format!("data.test={empty_s}")], "data.test"),
        (vec![format!("data.train={empty_s}")], "data.train"),
    ];
    for (sets, key) in cases {
        let out = dir.join("run");
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let t = fails(train(dir, &out, &sets, &[]));
        assert!(t.contains(key), "{sets:?}: {t}");
        if key != "maml.num_meta_iterations" {
            assert!(
                t.contains(&empty_s) && t.contains("no episodes"),
                "{sets:?}: {t}"
            );
        }
        assert!(!out.exists(), "{sets:?} left output behind");
    }

    // eval on an episode file without rows.
    let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch/exp-tiny/weights.safetensors");
    let json = dir.join("eval.json");
    let t = fails(
        bin()
            .args([
                "eval",
                "--model",
                weights.to_str().unwrap(),
                "--episodes",
                &empty_s,
                "--out",
                json.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
    );
    assert!(t.contains(&empty_s) && t.contains("no episodes"), "{t}");
    assert!(!json.exists());
}

#[test]
fn an_os_error_is_printed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.safetensors");
    let o = bin()
        .args([
            "eval",
            "--model",
            missing.to_str().unwrap(),
            "--episodes",
            &episodes(),
            "--out",
            tmp.path().join("e.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let t = fails(o);
    let os = std::io::Error::from_raw_os_error(2).to_string();
    assert_eq!(t.matches(&os).count(), 1, "{t}");
    assert!(t.contains(&format!("{}: {os}", missing.display())), "{t}");
}
