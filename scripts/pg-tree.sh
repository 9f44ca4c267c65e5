#!/bin/bash
# pg-tree.sh MAJOR [COMMAND...]
#
# A Debian tree with PostgreSQL MAJOR and everything building and testing
# sqs_ingest needs, built once with debootstrap from the Debian mirror this
# machine's apt uses and cached outside the repository:
#   15: Debian 12 "bookworm", 17: Debian 13 "trixie", 18: Debian unstable "sid".
#
# Without COMMAND it prints the tree's path (building or completing it
# first). With COMMAND it runs COMMAND as root inside the tree, in a private
# mount namespace holding /proc, /dev, /dev/pts and /dev/shm, so nothing
# stays mounted after it ends, however it ends. Run as root. A tree is
# reused until the package list below changes; remove it to take newer
# packages (e.g. rm -rf /var/cache/sqs_ingest/pg18).
#
#   SQS_INGEST_TREE_CACHE   where trees live (default /var/cache/sqs_ingest)
#   SQS_INGEST_DEBIAN_MIRROR  Debian mirror (default: the one apt uses here)
#   SQS_INGEST_TREE_BIND    "HOSTDIR:TREEDIR" bind-mounted for COMMAND
set -euo pipefail

usage() {
	echo "usage: $0 MAJOR [COMMAND...]   (MAJOR: 15, 17 or 18)" >&2
	exit 2
}

[ $# -ge 1 ] || usage
major=$1
shift
case "$major" in
	15) suite=bookworm ;;
	17) suite=trixie ;;
	18) suite=sid ;;
	*) usage ;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "pg-tree: run as root (debootstrap and chroot need it)" >&2
	exit 1
fi

cache=${SQS_INGEST_TREE_CACHE:-/var/cache/sqs_ingest}
tree=$cache/pg$major

PACKAGES=(
	"postgresql-$major"
	"postgresql-server-dev-$major"
	libcurl4-openssl-dev
	libssl-dev
	libxml2-dev
	libipc-run-perl
	make
	gcc
	pkg-config
	curl
	nodejs
	ca-certificates
	gnupg
)
stamp_want=$(printf '%s\n' "$suite" "${PACKAGES[@]}" | sha256sum | cut -d' ' -f1)

# The Debian mirror apt uses on this machine, from deb822 or one-line sources.
debian_mirror() {
	local uri
	if [ -n "${SQS_INGEST_DEBIAN_MIRROR:-}" ]; then
		echo "$SQS_INGEST_DEBIAN_MIRROR"
		return
	fi
	uri=$(awk '
		/^URIs:/ { uris = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /-security$/ && $i !~ /-updates$/) main = 1 }
		/^$/ { if (main && uris ~ /debian\/?$/) { print uris; exit } uris = ""; main = 0 }
		END { if (main && uris ~ /debian\/?$/) print uris }' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
	if [ -z "$uri" ]; then
		uri=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ && $3 !~ /-security$/ { print $2; exit }' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
	fi
	echo "${uri:-http://deb.debian.org/debian}"
}

# Run a command inside a tree with the pseudo file systems a server and
# node need, in a mount namespace of its own.
in_tree() {
	local root=$1
	shift
	unshare --mount --propagation private -- /bin/bash -c '
		set -e
		root=$1; bind=$2; shift 2
		mount -t proc proc "$root/proc"
		mount --bind /dev "$root/dev"
		mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
		mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
		mount -t tmpfs -o mode=1777 tmpfs "$root/run"
		if [ -n "$bind" ]; then
			mkdir -p "$root${bind#*:}"
			mount --bind "${bind%%:*}" "$root${bind#*:}"
		fi
		exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			"$@"' in_tree "$root" "${SQS_INGEST_TREE_BIND:-}" "$@"
}

# Install (or complete) the package set inside a tree.
install_packages() {
	local root=$1
	local opts=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3)

	# no cluster and no service started by the packages' scripts
	mkdir -p "$root/etc/postgresql-common"
	echo "create_main_cluster = false" > "$root/etc/postgresql-common/createcluster.conf"
	printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	in_tree "$root" apt-get "${opts[@]}" -q update
	in_tree "$root" env DEBIAN_FRONTEND=noninteractive \
		apt-get "${opts[@]}" -q -y --no-install-recommends install "${PACKAGES[@]}"
	in_tree "$root" apt-get clean
	echo "$stamp_want" > "$root/.sqs-ingest-tree"
}

ensure_tree() {
	mkdir -p "$cache"
	exec 8>"$cache/pg$major.lock"
	flock 8
	if [ -f "$tree/.sqs-ingest-tree" ] && [ "$(cat "$tree/.sqs-ingest-tree")" = "$stamp_want" ]; then
		flock -u 8
		return
	fi
	if [ -d "$tree" ] && [ -f "$tree/.sqs-ingest-base" ]; then
		echo "pg-tree: updating the packages of $tree" >&2
		install_packages "$tree" >&2
	else
		local mirror
		local work=$tree.new
		mirror=$(debian_mirror)
		if ! command -v debootstrap >/dev/null 2>&1; then
			apt-get -o DPkg::Lock::Timeout=600 -q update >&2
			DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
				-q -y --no-install-recommends install debootstrap >&2
		fi
		# an interrupted build resumes after a complete debootstrap
		if [ ! -f "$work/.sqs-ingest-base" ]; then
			rm -rf "$work"
			echo "pg-tree: building $tree (Debian $suite from $mirror)" >&2
			debootstrap --variant=minbase "$suite" "$work" "$mirror" >&2
			touch "$work/.sqs-ingest-base"
		fi
		install_packages "$work" >&2
		rm -rf "$tree"
		mv "$work" "$tree"
	fi
	flock -u 8
}

ensure_tree
if [ $# -eq 0 ]; then
	echo "$tree"
else
	in_tree "$tree" "$@"
fi
