//! The report's figures: each function writes a PNG of the stated size and a well-formed SVG whose
//! drawn marks sit where the data says (checked by fitting the pixel positions back to values
//! computed here independently), and bad input is an error that writes nothing.

use recmaml::plot::{row_intervals, val_curves, weight_schemes, RowInterval, Series};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Helpers: read back what was written.

fn file(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Decodes the PNG; returns width, height and the RGB(A) pixels.
fn read_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: PNG signature",
        path.display()
    );
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "colour PNG expected");
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// The PNG has the size and shows black (text, axes), white and the first series colour.
fn check_png(base: &Path, size: (u32, u32)) {
    let (w, h, px) = read_png(&file(base, "png"));
    assert_eq!((w, h), size);
    assert_eq!(px.len(), (w * h) as usize);
    assert!(px.contains(&[255, 255, 255]), "no white background");
    assert!(
        px.iter().any(|p| p.iter().all(|&c| c < 40)),
        "no black pixels (text, axes)"
    );
    assert!(
        px.contains(&[0x1f, 0x77, 0xb4]),
        "no pixel of the first series colour"
    );
}

/// Checks that tags nest and close, that text and attributes carry no raw `<` or stray `&`, and
/// returns the document.
fn read_svg(base: &Path) -> String {
    let svg = std::fs::read_to_string(file(base, "svg")).unwrap();
    assert!(
        svg.trim_start().starts_with("<svg"),
        "SVG must start with <svg"
    );
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg.as_str();
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open]);
        let close = rest[open..].find('>').expect("unclosed tag") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "`<` inside a tag: {tag}");
        check_text(tag);
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[close + 1..];
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    svg
}

fn check_text(s: &str) {
    for (i, _) in s.match_indices('&') {
        let entity = &s[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "raw `&` in SVG text: {}",
            &s[i..(i + 12).min(s.len())]
        );
    }
}

/// The text content of every `<text>` element, trimmed.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            body.trim().to_string()
        })
        .collect()
}

/// Attribute `name` of a tag's text.
fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let start = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    &tag[start..start + tag[start..].find('"').unwrap()]
}

/// Every element `<name ...>` as its tag text.
fn elements<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    svg.match_indices(&open)
        .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()])
        .collect()
}

/// Data lines: polylines of stroke width 2 with `n` points, in document order.
fn data_lines(svg: &str, n: usize) -> Vec<(String, Vec<(f64, f64)>)> {
    elements(svg, "polyline")
        .into_iter()
        .filter(|t| attr(t, "stroke-width") == "2")
        .map(|t| {
            let pts: Vec<(f64, f64)> = attr(t, "points")
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            (attr(t, "stroke").to_string(), pts)
        })
        .filter(|(_, pts)| pts.len() == n)
        .collect()
}

/// Least-squares `pixel ≈ a + b·value`; returns `(a, b, largest residual)`.
fn fit(pairs: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = pairs.len() as f64;
    let (mv, mp) = pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), (v, p)| (a + v / n, b + p / n));
    let sxy: f64 = pairs.iter().map(|(v, p)| (v - mv) * (p - mp)).sum();
    let sxx: f64 = pairs.iter().map(|(v, _)| (v - mv) * (v - mv)).sum();
    let b = sxy / sxx;
    let a = mp - b * mv;
    let worst = pairs
        .iter()
        .map(|(v, p)| (a + b * v - p).abs())
        .fold(0.0, f64::max);
    (a, b, worst)
}

fn normalised(raw: Vec<f64>) -> Vec<f64> {
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|w| w / total).collect()
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

// ---------------------------------------------------------------------------------------------
// Cell 09-05.

/// Each line panel's points: x pixels the same support index across lines, y pixels an affine
/// function of the weights computed here from the seed's formulas.
fn check_line_panel(lines: &[(String, Vec<(f64, f64)>)], expected: &[Vec<f64>]) {
    assert_eq!(lines.len(), expected.len());
    let xs: Vec<f64> = lines[0].1.iter().map(|p| p.0).collect();
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "x must grow with index");
    let mut pairs = Vec::new();
    for ((_, pts), w) in lines.iter().zip(expected) {
        assert_eq!(pts.iter().map(|p| p.0).collect::<Vec<_>>(), xs);
        pairs.extend(w.iter().zip(pts).map(|(&w, p)| (w, p.1)));
    }
    let (_, scale, worst) = fit(&pairs);
    assert!(scale < 0.0, "a larger weight must be drawn higher");
    assert!(worst <= 1.0, "points off their weights by {worst} px");
}

#[test]
fn weight_schemes_draws_the_seeds_three_panels_from_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("sub").join("recency_weights.v1");
    let k = 7;
    weight_schemes(&base, k).unwrap();
    check_png(&base, (1800, 600));
    let svg = read_svg(&base);

    let t = texts(&svg);
    for label in [
        "Exponential Weighting",
        "Linear vs Equal Weighting",
        "Softmax Weighting",
        "λ=0.1",
        "λ=0.3",
        "λ=0.5",
        "λ=1.0",
        "λ=2.0",
        "Equal",
        "Linear",
        "τ=0.5",
        "τ=1.0",
        "τ=2.0",
        "τ=5.0",
    ] {
        assert!(t.iter().any(|s| s == label), "missing text {label:?}");
    }
    assert_eq!(t.iter().filter(|s| *s == "Weight").count(), 3);
    let x_desc = "Support Pair Index (0=oldest)";
    assert_eq!(t.iter().filter(|s| *s == x_desc).count(), 3);

    // The seed's formulas, evaluated here: exp(λ·i/(K−1)) and softmax(i/τ), normalised.
    let span = (k - 1) as f64;
    let exponential: Vec<Vec<f64>> = [0.1, 0.3, 0.5, 1.0, 2.0]
        .iter()
        .map(|l: &f64| normalised((0..k).map(|i| (l * i as f64 / span).exp()).collect()))
        .collect();
    let softmax: Vec<Vec<f64>> = [0.5, 1.0, 2.0, 5.0]
        .iter()
        .map(|t: &f64| normalised((0..k).map(|i| (i as f64 / t).exp()).collect()))
        .collect();
    let lines = data_lines(&svg, k);
    assert_eq!(
        lines.len(),
        9,
        "5 exponential + 4 softmax lines of K points"
    );
    check_line_panel(&lines[..5], &exponential);
    check_line_panel(&lines[5..], &softmax);
    // A filled dot on every point of every line (legend dots come on top).
    let dots = elements(&svg, "circle").len();
    assert_eq!(
        dots,
        9 * k + 9,
        "one dot per point plus one per legend entry"
    );

    // Bars: K half-transparent equal bars, then K linear ones, heights proportional to the
    // weights 1/K and (i+1)/(K(K+1)/2) on one common scale from a common baseline.
    let bars: Vec<(f64, f64, &str)> = elements(&svg, "rect")
        .into_iter()
        .filter(|r| attr(r, "opacity") == "0.5")
        .map(|r| {
            let (y, h) = (attr(r, "y"), attr(r, "height"));
            (y.parse().unwrap(), h.parse().unwrap(), attr(r, "fill"))
        })
        .collect();
    assert_eq!(
        bars.len(),
        2 * k + 2,
        "2K bars, then the legend's two swatches"
    );
    let bars = &bars[..2 * k];
    let bottoms: Vec<f64> = bars.iter().map(|(y, h, _)| y + h).collect();
    assert!(bottoms.iter().all(|&b| (b - bottoms[0]).abs() <= 1.0));
    assert!(bars[..k].iter().all(|b| b.2 == bars[0].2));
    assert!(bars[k..]
        .iter()
        .all(|b| b.2 == bars[k].2 && b.2 != bars[0].2));
    let linear = normalised((1..=k).map(|i| i as f64).collect());
    let pairs: Vec<(f64, f64)> = (0..k)
        .map(|_| 1.0 / k as f64)
        .chain(linear)
        .zip(bars)
        .map(|(w, b)| (w, b.1))
        .collect();
    let (_, scale, worst) = fit(&pairs);
    assert!(scale > 0.0);
    assert!(worst <= 1.5, "bars off their weights by {worst} px");
}

#[test]
fn weight_schemes_handles_a_single_support_pair_and_rejects_none() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("k1");
    weight_schemes(&base, 1).unwrap();
    check_png(&base, (1800, 600));
    read_svg(&base);

    let empty = tempfile::tempdir().unwrap();
    let err = weight_schemes(&empty.path().join("w"), 0).unwrap_err();
    assert!(err.to_string().contains("K >= 1"), "{err}");
    assert!(dir_is_empty(empty.path()));
}

// ---------------------------------------------------------------------------------------------
// Validation curves.

fn demo_series() -> Vec<Series> {
    let curve = |label: &str, n: usize, f: &dyn Fn(f64) -> f64| Series {
        label: label.into(),
        points: (0..n).map(|i| (i as f64 * 25.0, f(i as f64))).collect(),
    };
    vec![
        curve("Vanilla MAML", 4, &|t| 0.02 + 0.01 * t),
        curve("Recency MAML (exp λ=0.5)", 6, &|t| 0.03 + 0.004 * t * t),
        curve("Warm-start <& recency>", 9, &|t| 0.09 - 0.005 * t),
    ]
}

#[test]
fn val_curves_draws_every_point_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("val_acc1");
    let series = demo_series();
    val_curves(&base, "Val Acc@1 <synthetic>", &series).unwrap();
    check_png(&base, (1500, 800));
    let svg = read_svg(&base);

    let t = texts(&svg);
    for label in [
        "Vanilla MAML",
        "Recency MAML (exp λ=0.5)",
        "Warm-start &lt;&amp; recency&gt;",
        "Val Acc@1 &lt;synthetic&gt;",
        "Meta-iteration",
        "Val Acc@1",
    ] {
        assert!(t.iter().any(|s| s == label), "missing text {label:?}");
    }

    // One line per series (in order, distinct colours), pixels affine in the data on both axes.
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut colours = Vec::new();
    for s in &series {
        let lines = data_lines(&svg, s.points.len());
        assert_eq!(lines.len(), 1, "one line of {} points", s.points.len());
        colours.push(lines[0].0.clone());
        for (p, q) in s.points.iter().zip(&lines[0].1) {
            xs.push((p.0, q.0));
            ys.push((p.1, q.1));
        }
    }
    colours.dedup();
    assert_eq!(colours.len(), 3);
    let (_, bx, wx) = fit(&xs);
    let (_, by, wy) = fit(&ys);
    assert!(bx > 0.0 && by < 0.0, "x grows right, y grows up");
    assert!(wx <= 1.0 && wy <= 1.0, "points off by {wx}, {wy} px");
    let dots = elements(&svg, "circle").len();
    assert_eq!(
        dots,
        4 + 6 + 9 + 3,
        "one dot per point plus one per legend entry"
    );
}

#[test]
fn val_curves_grows_for_many_series_and_accepts_a_single_point() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("many");
    let series: Vec<Series> = (0..30)
        .map(|i| Series {
            label: format!("model {i}"),
            points: vec![(0.0, 0.1)],
        })
        .collect();
    val_curves(&base, "many", &series).unwrap();
    let (_, h) = {
        let (w, h, _) = read_png(&file(&base, "png"));
        (w, h)
    };
    assert!(h > 800, "30 legend rows need a taller figure, got {h}");
    let t = texts(&read_svg(&base));
    assert!(t.iter().any(|s| s == "model 29"));
}

#[test]
fn val_curves_rejects_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("v");
    let bad = |series: Vec<Series>, needle: &str| {
        let err = val_curves(&base, "t", &series).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    };
    bad(vec![], "no series");
    let mut s = demo_series();
    s[1].points.clear();
    bad(s, "Recency MAML (exp λ=0.5)\" has no points");
    for v in [f64::NAN, f64::INFINITY] {
        let mut s = demo_series();
        s[2].points[3].1 = v;
        bad(s, "point 3: non-finite");
        let mut s = demo_series();
        s[0].points[0].0 = v;
        bad(s, "point 0: non-finite");
    }
    let mut s = demo_series();
    s[0].points[0].1 = -f64::MAX;
    s[0].points[1].1 = f64::MAX;
    bad(s, "span too far to plot");
    assert!(dir_is_empty(dir.path()));
}

// ---------------------------------------------------------------------------------------------
// Row intervals.

fn demo_rows() -> Vec<RowInterval> {
    let row = |label: &str, mean: f64, lo: f64, hi: f64| RowInterval {
        label: label.into(),
        mean,
        lo,
        hi,
    };
    vec![
        row("GRU4Rec baseline", 0.041, 0.030, 0.052),
        row("Vanilla MAML", -0.012, -0.020, 0.001),
        row("Recency MAML (exp λ=0.5)", 0.064, 0.060, 0.069),
        row("Popularity", 0.01, 0.01, 0.01),
    ]
}

#[test]
fn row_intervals_draws_one_interval_per_row_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("fewshot_acc1");
    let rows = demo_rows();
    row_intervals(&base, "Few-shot Acc@1", "Acc@1 − vanilla", &rows).unwrap();
    check_png(&base, (1500, 300.max(170 + 44 * rows.len() as u32)));
    let svg = read_svg(&base);

    let t = texts(&svg);
    for label in ["Few-shot Acc@1", "Acc@1 − vanilla"]
        .into_iter()
        .chain(rows.iter().map(|r| r.label.as_str()))
    {
        assert!(t.iter().any(|s| s == label), "missing text {label:?}");
    }
    // The numbers beside each row, to the decimals the span needs (span 0.089 -> 4).
    assert!(t.iter().any(|s| s == "0.0410 [0.0300, 0.0520]"), "{t:?}");
    assert!(t.iter().any(|s| s == "-0.0120 [-0.0200, 0.0010]"));

    // One dot per row, top to bottom in the given order, x affine in the mean; whiskers from
    // lo to hi at the dot's height, on the same x scale.
    let dots: Vec<(f64, f64)> = elements(&svg, "circle")
        .into_iter()
        .map(|c| {
            (
                attr(c, "cx").parse().unwrap(),
                attr(c, "cy").parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(dots.len(), rows.len());
    assert!(
        dots.windows(2).all(|w| w[0].1 < w[1].1),
        "rows top to bottom"
    );
    let means: Vec<(f64, f64)> = rows.iter().zip(&dots).map(|(r, d)| (r.mean, d.0)).collect();
    let (a, b, worst) = fit(&means);
    assert!(
        b > 0.0 && worst <= 1.0,
        "dots off their means by {worst} px"
    );
    let whiskers = data_lines(&svg, 2);
    for (r, d) in rows.iter().zip(&dots) {
        let want = [(a + b * r.lo, d.1), (a + b * r.hi, d.1)];
        let found = whiskers.iter().any(|(_, p)| {
            p.iter()
                .zip(&want)
                .all(|(p, w)| (p.0 - w.0).abs() <= 1.0 && (p.1 - w.1).abs() <= 1.0)
        });
        assert!(found, "no whisker for {:?} at {want:?}", r.label);
    }
}

#[test]
fn row_intervals_rejects_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("r");
    let bad = |rows: Vec<RowInterval>, needle: &str| {
        let err = row_intervals(&base, "t", "x", &rows)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    };
    bad(vec![], "no rows");
    let mut r = demo_rows();
    r[0].lo = 0.06;
    bad(
        r,
        "\"GRU4Rec baseline\": interval [0.06, 0.052] has lo > hi",
    );
    for v in [f64::NAN, f64::NEG_INFINITY] {
        let mut r = demo_rows();
        r[1].mean = v;
        bad(r, "\"Vanilla MAML\": non-finite");
        let mut r = demo_rows();
        r[2].hi = v;
        bad(r, "\"Recency MAML (exp λ=0.5)\": non-finite");
    }
    let mut r = demo_rows();
    r[0].lo = -f64::MAX;
    r[3].hi = f64::MAX;
    bad(r, "span too far to plot");
    assert!(dir_is_empty(dir.path()));
}
