# Only bases from our registry: every base image, whether recorded with the build or read
# from the Dockerfile, must come from registry.acme.dev (where bases are mirrored and scanned).
package lineage.registry

allowed_registries := {"registry.acme.dev"}

bases contains base.name if {
	some base in input.build.bases
	not base.registry in allowed_registries
}

bases contains base.reference if {
	some base in input.dockerfile.bases
	not base.registry in allowed_registries
}

deny contains {
	"code": "ACME001",
	"msg": sprintf("base image `%s` is not from registry.acme.dev", [name]),
	"hint": "build on the mirrored copy: `FROM registry.acme.dev/mirror/<image>:<tag>@sha256:<digest>`",
} if {
	input.kind == "build"
	some name in bases
}
