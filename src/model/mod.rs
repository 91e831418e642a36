//! The GRU4Rec model and the method's weighting: the parameter layout (PyTorch names and shapes),
//! its initialisation, and the recency weights of the support pairs in the inner loss. Nothing here
//! depends on data, backends or training loops.

pub mod init;
pub mod layout;
pub mod recency;

pub use init::init_params;
pub use layout::{ModelDims, ParamLayout, ParamTensor, PARAM_NAMES};
pub use recency::Recency;
