//! Building and copying real images with `umoci`, `skopeo` and `buildah`.
//!
//! Base images are made with umoci (an OCI layout, one layer per call to `repack`), then
//! pushed with skopeo. Application images are built by buildah from real Dockerfiles, with
//! vfs storage and chroot isolation, which need no daemon, no overlay mounts and no user
//! namespaces, so they run as root in a container. All state lives in the [`World`]'s
//! temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::{require, run};

/// The manifest format to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// `application/vnd.oci.image.manifest.v1+json`.
    Oci,
    /// Docker v2 schema 2, which has no annotations: converting drops them.
    Docker,
}

impl ImageFormat {
    fn buildah_flag(self) -> &'static str {
        match self {
            ImageFormat::Oci => "oci",
            ImageFormat::Docker => "v2s2",
        }
    }
}

/// An image in a registry: its reference and the manifest digest the push reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `127.0.0.1:PORT/name:tag`.
    pub reference: String,
    /// `sha256:<hex>` of the pushed manifest.
    pub digest: String,
    /// The digest file the pushing tool wrote (`--digestfile`), as CI jobs get it.
    pub digest_file: PathBuf,
}

impl Pushed {
    /// `127.0.0.1:PORT/name@sha256:<hex>`.
    pub fn pinned(&self) -> String {
        let name = match self.reference.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => name,
            _ => &self.reference,
        };
        format!("{name}@{}", self.digest)
    }
}

/// [`World::BUILD_EPOCH`] as RFC 3339, for umoci.
const BUILD_TIME: &str = "2026-11-01T00:00:00Z";

/// A scratch area for image tools: buildah storage, configs, layouts and build contexts.
pub struct World {
    dir: TempDir,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("lineage-world-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path();
        for sub in ["storage", "run", "tmp", "layouts", "contexts", "digests"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        // Accept unsigned images: the machine's policy.json may be missing or strict.
        std::fs::write(
            root.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("write policy");
        // No search registries: every reference in the tests is fully qualified, and the
        // machine's registries.conf must not redirect or block them.
        std::fs::write(
            root.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("write registries.conf");
        std::fs::write(
            root.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                root.join("storage").display(),
                root.join("run").display()
            ),
        )
        .expect("write storage.conf");
        World { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self, cmd: &mut Command) {
        let root = self.dir.path();
        cmd.env("CONTAINERS_REGISTRIES_CONF", root.join("registries.conf"))
            .env("CONTAINERS_STORAGE_CONF", root.join("storage.conf"))
            .env("CONTAINERS_POLICY_JSON", root.join("policy.json"))
            .env("BUILDAH_ISOLATION", "chroot")
            .env("STORAGE_DRIVER", "vfs")
            .env("TMPDIR", root.join("tmp"));
    }

    fn buildah(&self) -> Command {
        let mut cmd = Command::new(require("buildah", "buildah"));
        self.env(&mut cmd);
        let root = self.dir.path();
        cmd.arg("--root")
            .arg(root.join("storage"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args(["--storage-driver", "vfs"]);
        cmd
    }

    fn skopeo(&self) -> Command {
        let mut cmd = Command::new(require("skopeo", "skopeo"));
        self.env(&mut cmd);
        cmd.arg("--policy").arg(self.dir.path().join("policy.json"));
        cmd
    }

    fn digest_file(&self, label: &str) -> PathBuf {
        let n = std::fs::read_dir(self.dir.path().join("digests"))
            .map(|d| d.count())
            .unwrap_or(0);
        self.dir
            .path()
            .join("digests")
            .join(format!("{n}-{}", label.replace(['/', ':'], "_")))
    }

    fn read_digest(path: &Path) -> String {
        let digest = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("no digest file {}: {e}", path.display()));
        let digest = digest.trim().to_string();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "unexpected digest `{digest}` in {}",
            path.display()
        );
        digest
    }

    /// Builds an image with umoci, one layer per entry of `layers` (each a list of
    /// `(path in rootfs, contents)`), sets `labels` and `linux/amd64`, and pushes it with
    /// skopeo to `dest` (`127.0.0.1:PORT/name:tag`) as an OCI manifest.
    pub fn umoci_image(
        &self,
        dest: &str,
        layers: &[&[(&str, &str)]],
        labels: &[(&str, &str)],
    ) -> Pushed {
        let umoci = require("umoci", "umoci");
        let n = std::fs::read_dir(self.dir.path().join("layouts"))
            .map(|d| d.count())
            .unwrap_or(0);
        let layout = self.dir.path().join("layouts").join(format!("l{n}"));
        let image = format!("{}:img", layout.display());
        run(Command::new(&umoci).args(["init", "--layout"]).arg(&layout));
        run(Command::new(&umoci).args(["new", "--image", &image]));
        for (i, files) in layers.iter().enumerate() {
            let bundle = layout.with_extension(format!("bundle{i}"));
            run(Command::new(&umoci)
                .args(["unpack", "--rootless", "--image", &image])
                .arg(&bundle));
            for (path, contents) in files.iter() {
                let target = bundle.join("rootfs").join(path.trim_start_matches('/'));
                std::fs::create_dir_all(target.parent().expect("a file has a parent"))
                    .expect("mkdir in rootfs");
                std::fs::write(&target, contents).expect("write rootfs file");
            }
            run(Command::new(&umoci)
                .args(["repack", "--image", &image])
                .arg(&bundle));
        }
        let mut config = Command::new(&umoci);
        config.args([
            "config",
            "--image",
            &image,
            "--os",
            "linux",
            "--architecture",
            "amd64",
            "--created",
            BUILD_TIME,
        ]);
        for (k, v) in labels {
            config.arg("--config.label").arg(format!("{k}={v}"));
        }
        run(&mut config);
        let digest_file = self.digest_file(dest);
        run(self
            .skopeo()
            .args(["copy", "--dest-tls-verify=false", "--digestfile"])
            .arg(&digest_file)
            .arg(format!("oci:{image}"))
            .arg(format!("docker://{dest}")));
        Pushed {
            reference: dest.to_string(),
            digest: World::read_digest(&digest_file),
            digest_file,
        }
    }

    /// When every image buildah builds here says it was created (2026-11-01T00:00:00Z): the
    /// tests pin Lineage's clock to days after it, and a build time ahead of that clock is
    /// refused as a time in the future, as it should be.
    pub const BUILD_EPOCH: i64 = 1_793_491_200;

    /// Writes a build context (`Dockerfile` plus `files`) and builds it with buildah as
    /// `tag`. Returns nothing: push with [`World::buildah_push`].
    pub fn buildah_build(
        &self,
        dockerfile: &str,
        files: &[(&str, &str)],
        tag: &str,
        build_args: &[(&str, &str)],
    ) {
        let n = std::fs::read_dir(self.dir.path().join("contexts"))
            .map(|d| d.count())
            .unwrap_or(0);
        let context = self.dir.path().join("contexts").join(format!("c{n}"));
        std::fs::create_dir_all(&context).expect("mkdir context");
        std::fs::write(context.join("Dockerfile"), dockerfile).expect("write Dockerfile");
        for (path, contents) in files {
            let target = context.join(path);
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::write(target, contents).expect("write context file");
        }
        let mut cmd = self.buildah();
        cmd.arg("bud")
            .args(["--isolation", "chroot", "--tls-verify=false", "--pull"])
            .arg(format!("--timestamp={}", Self::BUILD_EPOCH))
            .arg("--signature-policy")
            .arg(self.dir.path().join("policy.json"))
            .args(["-t", tag]);
        for (k, v) in build_args {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        cmd.arg(&context);
        run(&mut cmd);
    }

    /// Builds `containerfile` in the directory `context` as `tag`, offline (no pulls: the
    /// file may only start `FROM scratch` or from images built here).
    pub fn buildah_build_context(&self, context: &Path, containerfile: &Path, tag: &str) {
        run(self
            .buildah()
            .arg("bud")
            .args(["--isolation", "chroot", "--pull-never"])
            .arg("--signature-policy")
            .arg(self.dir.path().join("policy.json"))
            .arg("-f")
            .arg(containerfile)
            .args(["-t", tag])
            .arg(context));
    }

    /// Runs the command `args` in a new container of the local image `image` (as the image's
    /// user, in its working directory) and returns stdout; the container is removed afterwards.
    pub fn buildah_run(&self, image: &str, args: &[&str]) -> String {
        let container = run(self.buildah().args(["from", "--pull-never", image]))
            .trim()
            .to_string();
        let mut cmd = self.buildah();
        cmd.args(["run", "--isolation", "chroot", &container, "--"]);
        cmd.args(args);
        let out = cmd.output().expect("buildah run");
        let _ = self.buildah().args(["rm", &container]).output();
        assert!(
            out.status.success(),
            "buildah run {image} {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pushes the local buildah image `tag` to the registry it names, in `format`.
    pub fn buildah_push(&self, tag: &str, format: ImageFormat) -> Pushed {
        self.buildah_push_to(tag, tag, format)
    }

    /// Pushes the local buildah image `image` to `dest` (`127.0.0.1:PORT/name:tag`).
    pub fn buildah_push_to(&self, image: &str, dest: &str, format: ImageFormat) -> Pushed {
        let digest_file = self.digest_file(dest);
        run(self
            .buildah()
            .arg("push")
            .args(["--tls-verify=false", "--format", format.buildah_flag()])
            .arg("--signature-policy")
            .arg(self.dir.path().join("policy.json"))
            .arg("--digestfile")
            .arg(&digest_file)
            .arg(image)
            .arg(format!("docker://{dest}")));
        Pushed {
            reference: dest.to_string(),
            digest: World::read_digest(&digest_file),
            digest_file,
        }
    }

    /// `skopeo copy` between two registry references, converting to `format`. Copying to
    /// [`ImageFormat::Docker`] drops every manifest annotation but keeps the layer blobs.
    pub fn skopeo_copy(&self, src: &str, dest: &str, format: ImageFormat) -> Pushed {
        let digest_file = self.digest_file(dest);
        run(self
            .skopeo()
            .args([
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--format",
                format.buildah_flag(),
                "--digestfile",
            ])
            .arg(&digest_file)
            .arg(format!("docker://{src}"))
            .arg(format!("docker://{dest}")));
        Pushed {
            reference: dest.to_string(),
            digest: World::read_digest(&digest_file),
            digest_file,
        }
    }
}
