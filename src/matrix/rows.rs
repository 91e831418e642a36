//! The rows of the matrix: what each computes (baseline, or MAML with a weighting scheme, warm
//! or not), where it appears in the report, which ones `matrix.rows` selects, and the
//! configuration each row trains with for a seed.

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
    /// Meta-trained with FOMAML.
    Maml {
        warm: bool,
        scheme: WeightingScheme,
        lambda: Option<f64>,
        temperature: Option<f64>,
    },
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
    Kind::Maml {
        warm,
        scheme,
        lambda,
        temperature: t,
    }
}

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

/// Every row, in report order. The name is the row's folder and its key in `matrix.rows`.
const ROWS: [RowSpec; 11] = [
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
    if let Kind::Maml {
        warm,
        scheme,
        lambda,
        temperature,
    } = row.kind
    {
        c.recency.weighting_scheme = scheme;
        if let Some(l) = lambda {
            c.recency.lambda = l;
        }
        if let Some(t) = temperature {
            c.recency.temperature = t;
        }
        c.warmstart.use_warmstart = warm;
        c.warmstart.pretrained_path = if warm {
            pretrained.display().to_string()
        } else {
            String::new()
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
