//! `myrt`: a runc-compatible command line over the myrt engine.

mod cli;

fn main() {
    // Must run before anything else: in the container's init this re-exec of the binary turns
    // into the init and never returns here.
    myrt_runtime::init_main_if_requested();
    std::process::exit(cli::main());
}
