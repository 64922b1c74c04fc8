//! The busybox test image: a rootfs directory and an OCI archive, built once per run.

use std::env;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::command;
use crate::paths;

/// The name `ctr images import` gives the archive (from its `io.containerd.image.name`).
pub const IMAGE_REF: &str = "localhost/myrt/busybox:latest";

/// The outputs of scripts/build-image.sh.
#[derive(Debug, Clone)]
pub struct Image {
    /// The directory holding both.
    pub dir: PathBuf,
    /// `busybox-rootfs`: for `ctr run --rootfs`.
    pub rootfs: PathBuf,
    /// `busybox-oci.tar`: for `ctr images import`.
    pub archive: PathBuf,
}

impl Image {
    fn at(dir: PathBuf) -> Image {
        Image {
            rootfs: dir.join("busybox-rootfs"),
            archive: dir.join("busybox-oci.tar"),
            dir,
        }
    }
}

/// The image from `$MYRT_IMAGE_DIR` (it must exist there), else built by scripts/build-image.sh
/// into `<target>/myrt-e2e-image` (idempotent, so a later run reuses it). Panics with what to do
/// when neither works.
pub fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Some(dir) = env::var_os("MYRT_IMAGE_DIR").filter(|d| !d.is_empty()) {
            let image = Image::at(PathBuf::from(dir));
            assert!(
                image.rootfs.join("bin/busybox").is_file() && image.archive.is_file(),
                "MYRT_IMAGE_DIR={} holds no busybox-rootfs/bin/busybox or busybox-oci.tar: \
                 run scripts/build-image.sh {0} or unset MYRT_IMAGE_DIR",
                image.dir.display()
            );
            return image;
        }
        let dir = paths::target_dir().join("myrt-e2e-image");
        let script = paths::scripts_dir().join("build-image.sh");
        command::run(Command::new(&script).arg(&dir), Duration::from_secs(120)).ok();
        Image::at(dir)
    })
}

/// The pod sandbox image of the CRI tests (`sandbox_image` of `containerd.sh config-cri`).
pub const PAUSE_REF: &str = "localhost/myrt/pause:latest";

/// The OCI archive of the pause image (only /pause, a static build of scripts/pause.c), built by
/// scripts/build-pause-image.py into `<target>/myrt-e2e-pause` (idempotent). Panics with what to
/// do when that fails (it needs python3 and cc with a static libc).
pub fn pause_image() -> &'static PathBuf {
    static PAUSE: OnceLock<PathBuf> = OnceLock::new();
    PAUSE.get_or_init(|| {
        let dir = paths::target_dir().join("myrt-e2e-pause");
        let script = paths::scripts_dir().join("build-pause-image.py");
        command::run(
            Command::new("python3").arg(&script).arg(&dir),
            Duration::from_secs(120),
        )
        .ok();
        dir.join("pause-oci.tar")
    })
}
