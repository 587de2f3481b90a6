{
  description = "homeinfra-tui: a keyboard-driven dashboard and guarded rolling upgrades for a small NixOS + k3s + Longhorn homelab";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      cargo = builtins.fromTOML (builtins.readFile ./Cargo.toml);

      # The package, as a function of a package set (used by `packages` and the overlay).
      homeinfra-tui = pkgs: pkgs.rustPlatform.buildRustPackage {
        pname = "homeinfra-tui";
        version = cargo.package.version;
        src = pkgs.lib.cleanSource ./.;
        cargoLock.lockFile = ./Cargo.lock;
        nativeBuildInputs = [ pkgs.installShellFiles ];
        # The tests need real etcd, Prometheus, Alertmanager, sshd and Nix on loopback
        # (scripts/test.sh); the sandbox has none of them.
        doCheck = false;
        postInstall = ''
          installShellCompletion --cmd homeinfra-tui \
            --bash <($out/bin/homeinfra-tui completions bash) \
            --zsh <($out/bin/homeinfra-tui completions zsh) \
            --fish <($out/bin/homeinfra-tui completions fish)
          $out/bin/homeinfra-tui man > homeinfra-tui.1
          installManPage homeinfra-tui.1
          mkdir -p $out/share/homeinfra-tui
          cp -r themes $out/share/homeinfra-tui/
        '';
        meta = {
          description = cargo.package.description;
          license = pkgs.lib.licenses.mit;
          mainProgram = "homeinfra-tui";
          platforms = pkgs.lib.platforms.linux;
        };
      };
    in
    {
      overlays.default = final: prev: { homeinfra-tui = homeinfra-tui final; };

      packages = forAll (pkgs: {
        homeinfra-tui = homeinfra-tui pkgs;
        default = homeinfra-tui pkgs;
      });

      apps = forAll (pkgs: {
        default = {
          type = "app";
          program = "${homeinfra-tui pkgs}/bin/homeinfra-tui";
        };
      });

      # `nix develop`: the toolchain and every component the tests run on loopback.
      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            cargo-nextest
            etcd
            prometheus
            prometheus-node-exporter
            prometheus-alertmanager
            openssh
            nix
            tmux
            kubectl
            groff
          ];
        };
      });
    };
}
