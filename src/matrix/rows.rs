//! The rows of the matrix: what each computes (a baseline, or MAML with a weighting scheme, warm,
//! residual or not, with its own inner loop in the sensitivity block), where it appears in the
//! report, which ones `matrix.rows` selects, and the configuration each row trains with for a
//! seed.

use crate::config::{Config, WeightingScheme};
use crate::error::{Error, Result};
use std::path::Path;

/// How a row's model is obtained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    /// The pretrained global model, not adapted.
    Gru4Rec,
    /// Most frequent train labels.
    Popularity,
    /// Session-KNN over the train sessions ([`super::knn`]), not adapted.
    SessionKnn,
    /// Meta-trained with FOMAML.
    Maml(MamlRow),
}

/// What a MAML row sets on top of the matrix's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct MamlRow {
    pub(super) warm: bool,
    pub(super) scheme: WeightingScheme,
    pub(super) lambda: Option<f64>,
    pub(super) temperature: Option<f64>,
    /// Inner learning rate and steps, when the row sets its own.
    pub(super) inner_lr: Option<f64>,
    pub(super) inner_steps: Option<usize>,
    /// Outer learning rate, when the row sets its own.
    pub(super) outer_lr: Option<f64>,
    /// Residual warm-start: `warmstart.residual_l2` is the matrix's `matrix.residual_l2`.
    pub(super) residual: bool,
}

impl Kind {
    /// Whether the row adapts to the support pairs (zero- and few-shot differ).
    pub(super) fn adapts(&self) -> bool {
        matches!(self, Kind::Maml(_))
    }
}

/// Which of the seed's two tables a row appears in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Tables {
    pub(super) comparison: bool,
    pub(super) ablation: bool,
}

/// One row of the matrix.
#[derive(Clone, Copy, Debug)]
pub(super) struct RowSpec {
    pub(super) name: &'static str,
    pub(super) model: &'static str,
    pub(super) init: &'static str,
    pub(super) inner: &'static str,
    /// The ablation table's "Scheme" and "Lambda/Temp" cells.
    pub(super) scheme_cell: (&'static str, &'static str),
    pub(super) tables: Tables,
    pub(super) kind: Kind,
}

const fn maml(warm: bool, scheme: WeightingScheme, lambda: Option<f64>, t: Option<f64>) -> Kind {
    Kind::Maml(MamlRow {
        warm,
        scheme,
        lambda,
        temperature: t,
        inner_lr: None,
        inner_steps: None,
        outer_lr: None,
        residual: false,
    })
}

/// A row of the inner-loop sensitivity block: random init, equal or exponential (λ = 0.5)
/// weights, its own inner learning rate and steps.
const fn sensitivity(
    name: &'static str,
    inner: &'static str,
    lr: f64,
    steps: usize,
    exp: bool,
) -> RowSpec {
    let (scheme, lambda) = if exp {
        (WeightingScheme::Exponential, Some(0.5))
    } else {
        (WeightingScheme::Equal, None)
    };
    RowSpec {
        name,
        model: if exp { "Recency MAML" } else { "Vanilla MAML" },
        init: "Random",
        inner,
        scheme_cell: ("", ""),
        tables: NONE,
        kind: Kind::Maml(MamlRow {
            warm: false,
            scheme,
            lambda,
            temperature: None,
            inner_lr: Some(lr),
            inner_steps: Some(steps),
            outer_lr: None,
            residual: false,
        }),
    }
}

/// One cell of the inner-loop sensitivity block: inner learning rate, steps, and the rows with
/// equal and with exponential (λ = 0.5) weights. The matrix's own setting (0.01, 5) is the
/// vanilla and recency rows.
pub(super) const SENSITIVITY: [(f64, usize, &str, &str); 6] = [
    (0.01, 1, "lr0.01x1_equal", "lr0.01x1_exp"),
    (0.01, 5, "vanilla", "recency"),
    (0.05, 1, "lr0.05x1_equal", "lr0.05x1_exp"),
    (0.05, 5, "lr0.05x5_equal", "lr0.05x5_exp"),
    (0.1, 1, "lr0.1x1_equal", "lr0.1x1_exp"),
    (0.1, 5, "lr0.1x5_equal", "lr0.1x5_exp"),
];

const COMPARISON: Tables = Tables {
    comparison: true,
    ablation: false,
};
const ABLATION: Tables = Tables {
    comparison: false,
    ablation: true,
};
const BOTH: Tables = Tables {
    comparison: true,
    ablation: true,
};
/// In neither table (the sensitivity block lists it, see [`SENSITIVITY`]).
const NONE: Tables = Tables {
    comparison: false,
    ablation: false,
};

/// Every row, in report order. The name is the row's folder and its key in `matrix.rows`.
const ROWS: [RowSpec; 23] = [
    RowSpec {
        name: "gru4rec",
        model: "GRU4Rec baseline",
        init: "Trained",
        inner: "N/A",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: Kind::Gru4Rec,
    },
    RowSpec {
        name: "popularity",
        model: "Popularity",
        init: "Train label counts",
        inner: "N/A",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: Kind::Popularity,
    },
    RowSpec {
        name: "vanilla",
        model: "Vanilla MAML",
        init: "Random",
        inner: "Equal weights",
        scheme_cell: ("Equal (baseline)", "-"),
        tables: BOTH,
        kind: maml(false, WeightingScheme::Equal, None, None),
    },
    RowSpec {
        name: "warmstart",
        model: "Warm-Start MAML",
        init: "GRU4Rec",
        inner: "Equal weights",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: maml(true, WeightingScheme::Equal, None, None),
    },
    RowSpec {
        name: "recency",
        model: "Recency MAML",
        init: "Random",
        inner: "Exponential λ=0.5",
        scheme_cell: ("Exponential", "λ=0.5"),
        tables: BOTH,
        kind: maml(false, WeightingScheme::Exponential, Some(0.5), None),
    },
    RowSpec {
        name: "warmstart_recency",
        model: "Warm-Start + Recency",
        init: "GRU4Rec",
        inner: "Exponential λ=0.5",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: maml(true, WeightingScheme::Exponential, Some(0.5), None),
    },
    RowSpec {
        name: "residual",
        model: "Residual Warm-Start",
        init: "GRU4Rec (frozen) + δ = 0",
        inner: "Equal weights, 3 steps; outer lr 1e-4",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: Kind::Maml(MamlRow {
            warm: true,
            scheme: WeightingScheme::Equal,
            lambda: None,
            temperature: None,
            inner_lr: None,
            inner_steps: Some(3),
            outer_lr: Some(1e-4),
            residual: true,
        }),
    },
    RowSpec {
        name: "sknn",
        model: "Session-KNN",
        init: "Train sessions",
        inner: "N/A",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: Kind::SessionKnn,
    },
    RowSpec {
        name: "exp0.3",
        model: "Recency MAML",
        init: "Random",
        inner: "Exponential λ=0.3",
        scheme_cell: ("Exponential", "λ=0.3"),
        tables: ABLATION,
        kind: maml(false, WeightingScheme::Exponential, Some(0.3), None),
    },
    RowSpec {
        name: "exp1.0",
        model: "Recency MAML",
        init: "Random",
        inner: "Exponential λ=1.0",
        scheme_cell: ("Exponential", "λ=1.0"),
        tables: ABLATION,
        kind: maml(false, WeightingScheme::Exponential, Some(1.0), None),
    },
    RowSpec {
        name: "linear",
        model: "Recency MAML",
        init: "Random",
        inner: "Linear",
        scheme_cell: ("Linear", "-"),
        tables: ABLATION,
        kind: maml(false, WeightingScheme::Linear, None, None),
    },
    RowSpec {
        name: "softmax1.0",
        model: "Recency MAML",
        init: "Random",
        inner: "Softmax τ=1.0",
        scheme_cell: ("Softmax", "τ=1.0"),
        tables: ABLATION,
        kind: maml(false, WeightingScheme::Softmax, None, Some(1.0)),
    },
    RowSpec {
        name: "time",
        model: "Recency MAML",
        init: "Random",
        inner: "Time decay",
        scheme_cell: ("Time decay", "τ = recency.tau"),
        tables: ABLATION,
        kind: maml(false, WeightingScheme::Time, None, None),
    },
    sensitivity("lr0.01x1_equal", "Equal, lr 0.01 × 1 step", 0.01, 1, false),
    sensitivity(
        "lr0.01x1_exp",
        "Exponential λ=0.5, lr 0.01 × 1 step",
        0.01,
        1,
        true,
    ),
    sensitivity("lr0.05x1_equal", "Equal, lr 0.05 × 1 step", 0.05, 1, false),
    sensitivity(
        "lr0.05x1_exp",
        "Exponential λ=0.5, lr 0.05 × 1 step",
        0.05,
        1,
        true,
    ),
    sensitivity("lr0.05x5_equal", "Equal, lr 0.05 × 5 steps", 0.05, 5, false),
    sensitivity(
        "lr0.05x5_exp",
        "Exponential λ=0.5, lr 0.05 × 5 steps",
        0.05,
        5,
        true,
    ),
    sensitivity("lr0.1x1_equal", "Equal, lr 0.1 × 1 step", 0.1, 1, false),
    sensitivity(
        "lr0.1x1_exp",
        "Exponential λ=0.5, lr 0.1 × 1 step",
        0.1,
        1,
        true,
    ),
    sensitivity("lr0.1x5_equal", "Equal, lr 0.1 × 5 steps", 0.1, 5, false),
    sensitivity(
        "lr0.1x5_exp",
        "Exponential λ=0.5, lr 0.1 × 5 steps",
        0.1,
        5,
        true,
    ),
];

/// The names `matrix.rows` accepts.
pub fn row_names() -> Vec<&'static str> {
    ROWS.iter().map(|r| r.name).collect()
}

/// The rows selected by `matrix.rows` (all when empty); vanilla MAML is always included since
/// every difference is taken against it.
pub(super) fn selected_rows(cfg: &Config) -> Result<Vec<RowSpec>> {
    for name in &cfg.matrix.rows {
        if !ROWS.iter().any(|r| r.name == name) {
            return Err(Error::config(
                "matrix.rows",
                format!("unknown row `{name}`; rows are {:?}", row_names()),
            ));
        }
    }
    Ok(ROWS
        .iter()
        .filter(|r| {
            cfg.matrix.rows.is_empty()
                || r.name == "vanilla"
                || cfg.matrix.rows.iter().any(|n| n == r.name)
        })
        .copied()
        .collect())
}

/// The configuration of a MAML row for one seed.
pub(super) fn maml_config(base: &Config, row: &RowSpec, seed: u64, pretrained: &Path) -> Config {
    let mut c = base.clone();
    c.run.seed = seed;
    c.matrix = Default::default();
    if let Kind::Maml(m) = row.kind {
        c.recency.weighting_scheme = m.scheme;
        if let Some(l) = m.lambda {
            c.recency.lambda = l;
        }
        if let Some(t) = m.temperature {
            c.recency.temperature = t;
        }
        if let Some(lr) = m.inner_lr {
            c.maml.inner_lr = lr;
        }
        if let Some(steps) = m.inner_steps {
            c.maml.inner_steps = steps;
        }
        if let Some(lr) = m.outer_lr {
            c.maml.outer_lr = lr;
        }
        c.warmstart.use_warmstart = m.warm;
        c.warmstart.pretrained_path = if m.warm {
            pretrained.display().to_string()
        } else {
            String::new()
        };
        c.warmstart.residual_l2 = if m.residual {
            base.matrix.residual_l2
        } else {
            0.0
        };
    }
    c
}

/// The configuration pretraining depends on, for one seed (its reuse key).
pub(super) fn pretrain_config(base: &Config, seed: u64) -> Config {
    let mut c = Config::default();
    c.data.pairs_train = base.data.pairs_train.clone();
    c.data.test = base.data.test.clone();
    c.model = base.model.clone();
    c.pretrain = base.pretrain.clone();
    c.recency = base.recency.clone();
    c.run.seed = seed;
    c.run.backend = base.run.backend;
    c
}
