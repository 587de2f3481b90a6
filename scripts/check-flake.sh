#!/usr/bin/env bash
# Checks flake.nix without the network: it parses, and its outputs evaluate to the expected
# shape (overlay, package, app, dev shell for each system) against a small stand-in for
# nixpkgs. `nix flake check --no-build` runs too when nixpkgs can be had offline (the flake
# registry or store already has it); otherwise it says so and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nix-instantiate >/dev/null || { echo "[check-flake] nix-instantiate not found (apt-get install nix-bin)" >&2; exit 1; }
export NIX_CONFIG="experimental-features = nix-command flakes
build-users-group =
substituters =
sandbox = false"
nix-instantiate --parse flake.nix >/dev/null
echo "[check-flake] flake.nix parses" >&2
out=$(nix-instantiate --eval --strict --json --expr '
let
  flake = import ./flake.nix;
  stubPkgs = {
    lib = {
      genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
      cleanSource = p: p;
      licenses.mit = "MIT";
      platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
    };
    rustPlatform.buildRustPackage = args: args // { type = "derivation"; outPath = "/nix/store/stub-homeinfra-tui"; };
    mkShell = args: args // { type = "derivation"; };
    installShellFiles = "installShellFiles";
  } // builtins.listToAttrs (map (n: { name = n; value = n; }) [
    "cargo" "rustc" "clippy" "rustfmt" "cargo-nextest" "etcd" "prometheus"
    "prometheus-node-exporter" "prometheus-alertmanager" "openssh" "nix" "tmux" "kubectl" "groff" ]);
  nixpkgs = { legacyPackages = { x86_64-linux = stubPkgs; aarch64-linux = stubPkgs; }; lib = stubPkgs.lib; };
  o = flake.outputs { self = o; inherit nixpkgs; };
  pkg = o.packages.x86_64-linux.default;
in {
  outputs = builtins.attrNames o;
  systems = builtins.attrNames o.packages;
  pname = pkg.pname;
  version = pkg.version;
  lock = builtins.baseNameOf (toString pkg.cargoLock.lockFile);
  app = o.apps.x86_64-linux.default.program;
  overlay = (o.overlays.default stubPkgs stubPkgs).homeinfra-tui.pname;
  devShell = builtins.length o.devShells.aarch64-linux.default.packages;
}')
echo "[check-flake] outputs: $out" >&2
expected='{"app":"/nix/store/stub-homeinfra-tui/bin/homeinfra-tui","devShell":14,"lock":"Cargo.lock","outputs":["apps","devShells","overlays","packages"],"overlay":"homeinfra-tui","pname":"homeinfra-tui","systems":["aarch64-linux","x86_64-linux"],"version":"'"$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"'"}'
if [ "$out" != "$expected" ]; then
  echo "[check-flake] unexpected outputs; expected $expected" >&2
  exit 1
fi
if timeout 20 nix flake check --no-build --offline . >/tmp/check-flake.$$ 2>&1; then
  echo "[check-flake] nix flake check --no-build: ok" >&2
else
  echo "[check-flake] nix flake check --no-build skipped: nixpkgs is not available offline ($(tail -1 /tmp/check-flake.$$))" >&2
fi
rm -f /tmp/check-flake.$$
