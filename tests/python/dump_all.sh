#!/bin/sh
# Dump a table corpus for every available interpreter to /tmp/frontrun-tables-<version>.bin,
# one at a time (shared 2-core box). Uses the pytest venvs so pytest-rewritten modules are
# dumped too. Then: cargo run --release --example codecs_check -- /tmp/frontrun-tables-*.bin
here=$(dirname "$0")
{
  for v in 3.10 3.11 3.12 3.13; do echo "$v /work/devvenv/$v/bin/python"; done
  # "version interpreter venv" lines, once the newer interpreters are provisioned.
  [ -f "$HOME/.cache/frontrun/pythons.txt" ] &&
    awk 'NF >= 3 { print $1, $3 "/bin/python" } NF == 2 { print $1, $2 }' "$HOME/.cache/frontrun/pythons.txt"
} | while read -r version python; do
  [ -x "$python" ] || continue
  case " $seen " in *" $version "*) continue ;; esac
  seen="$seen $version"
  FRONTRUN_DUMP_PYTEST_REWRITE=1 "$python" "$here/dump_tables_corpus.py" "/tmp/frontrun-tables-$version.bin"
done
