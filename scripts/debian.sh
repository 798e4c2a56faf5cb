# Sourced by scripts/setup and scripts/bench: Debian packages from the machine's
# own sources, and a private view of Debian unstable (sid) whose binary packages
# are unpacked into a prefix of ours (nothing installed, /etc/apt never edited).
# The caller sets CACHE and defines say().
SID_SUITE="${SRA_DEBIAN_SUITE:-sid}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
    # Install Debian packages from the machine's own sources (never edits /etc/apt).
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $apt_updated = 0 ]; then
        say "apt-get update"
        as_root apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ---- a private view of Debian unstable ----
SID_DIR="$CACHE/apt-$SID_SUITE"
sid_opts() {
    echo "-o Dir::Etc::SourceList=$SID_DIR/$SID_SUITE.sources -o Dir::Etc::SourceParts=/dev/null" \
         "-o Dir::State::Lists=$SID_DIR/lists -o Dir::Cache=$SID_DIR/cache" \
         "-o Dir::State::status=/dev/null -o APT::Sandbox::User=root -o Debug::NoLocking=1"
}
sid_ready=0
sid_prepare() {
    [ $sid_ready = 1 ] && return 0
    [ -r "$KEYRING" ] || apt_install debian-archive-keyring
    mkdir -p "$SID_DIR/lists/partial" "$SID_DIR/cache/archives/partial" "$SID_DIR/debs"
    cat >"$SID_DIR/$SID_SUITE.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SID_SUITE
Components: main
Signed-By: $KEYRING
SRC
    say "refreshing the private package lists for Debian $SID_SUITE in $SID_DIR"
    # shellcheck disable=SC2046
    apt-get $(sid_opts) -qq update
    sid_ready=1
}
sid_closure() {
    # Print the recursive dependency closure of the given packages (real packages only).
    # shellcheck disable=SC2046
    apt-cache $(sid_opts) depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "$@" | grep -v '^[ <]' | sort -u
}
sid_extract() {
    # sid_extract PREFIX PKG...: download the packages and unpack them into PREFIX.
    local prefix="$1"; shift
    mkdir -p "$prefix"
    (
        cd "$SID_DIR/debs"
        # shellcheck disable=SC2046
        apt-get $(sid_opts) -qq download "$@"
        for pkg in "$@"; do
            local deb
            deb=$(ls -t "${pkg}"_*.deb | head -n 1)
            dpkg-deb -x "$deb" "$prefix"
        done
    )
}
