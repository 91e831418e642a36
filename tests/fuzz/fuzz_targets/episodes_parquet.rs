#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(
    init: {
        // The episode reader runs the parquet and arrow crates under `catch_unwind` and turns
        // their panics into an error naming the file (`src/data/episodes/columns.rs`), so a
        // panic raised inside those crates is an error of the reader, not a crash. libfuzzer's
        // hook aborts on every panic; this one lets those two crates' panics unwind to the
        // reader and still aborts on a panic anywhere else (our code included).
        let aborting = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_dependency = info.location().is_some_and(|l| {
                let file = l.file();
                file.contains("/parquet-") || file.contains("/arrow-")
            });
            if !in_dependency {
                aborting(info);
            }
        }));
    },
    |data: &[u8]| {
        let _ = targets::run("episodes_parquet", data);
    }
);
