//! Embeds nothing at build time but tells cargo when to rebuild: the CUDA kernels in `kernels/`
//! are compiled at run time with NVRTC, so the build never needs nvcc.
fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=build.rs");
}
