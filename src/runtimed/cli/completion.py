"""Shell completion scripts (bash, zsh, fish) made from a command tree.

Each script holds, for every group, its subcommands and options, and for every command
its options; completing walks the words typed so far to find where in the tree the
cursor is. Positional arguments (paths, ids) complete as files.
"""

from __future__ import annotations

from runtimed.cli.command_line import Group, walk


def _table(root: Group) -> list[tuple[str, list[str], list[str], str]]:
    """(path, subcommand names, option flags, help) of every node."""
    rows = []
    for path, node in walk(root):
        children = list(node.children) if isinstance(node, Group) else []
        flags = ["--help", *(f for o in node.options if not o.positional for f in o.flags)]
        if node is root:
            flags.append("--version")
        rows.append((" ".join(path), children, flags, node.help))
    return rows


def _words(items: list[str]) -> str:
    return " ".join(items)


def bash(root: Group) -> str:
    name = root.name
    fn = f"_{name}_complete"
    lines = [
        f'# {name} completion for bash: eval "$({name} completion bash)"',
        f"declare -gA _{name}_children=(",
    ]
    rows = _table(root)
    lines += [f'  ["{path}"]="{_words(kids)}"' for path, kids, _, _ in rows if kids]
    lines += [")", f"declare -gA _{name}_options=("]
    lines += [f'  ["{path}"]="{_words(flags)}"' for path, _, flags, _ in rows]
    lines += [
        ")",
        f"{fn}() {{",
        f'  local cur="${{COMP_WORDS[COMP_CWORD]}}" path="{name}" w i',
        "  for ((i = 1; i < COMP_CWORD; i++)); do",
        '    w="${COMP_WORDS[i]}"',
        f'    if [[ " ${{_{name}_children[$path]}} " == *" $w "* ]]; then path="$path $w"; fi',
        "  done",
        '  if [[ "$cur" == -* ]]; then',
        f'    COMPREPLY=($(compgen -W "${{_{name}_options[$path]}}" -- "$cur"))',
        f'  elif [[ -n "${{_{name}_children[$path]}}" ]]; then',
        f'    COMPREPLY=($(compgen -W "${{_{name}_children[$path]}}" -- "$cur"))',
        "  fi",
        "}",
        f"complete -o default -F {fn} {name}",
        "",
    ]
    return "\n".join(lines)


def zsh(root: Group) -> str:
    name = root.name
    rows = _table(root)
    lines = [
        f"#compdef {name}",
        f'# {name} completion for zsh: {name} completion zsh > "${{fpath[1]}}/_{name}"',
        f"_{name}() {{",
        "  local -A children options",
        "  children=(",
        *(f"    {_zq(path)} {_zq(_words(kids))}" for path, kids, _, _ in rows if kids),
        "  )",
        "  options=(",
        *(f"    {_zq(path)} {_zq(_words(flags))}" for path, _, flags, _ in rows),
        "  )",
        f"  local where={name} w i",
        "  for ((i = 2; i < CURRENT; i++)); do",
        "    w=${words[i]}",
        '    if [[ " ${children[$where]} " == *" $w "* ]]; then where="$where $w"; fi',
        "  done",
        "  if [[ ${words[CURRENT]} == -* ]]; then",
        "    compadd -- ${=options[$where]}",
        "  elif [[ -n ${children[$where]} ]]; then",
        "    compadd -- ${=children[$where]}",
        "  else",
        "    _files",
        "  fi",
        "}",
        f'if [[ "$funcstack[1]" == "_{name}" ]]; then _{name} "$@"; '
        f"else compdef _{name} {name}; fi",
        "",
    ]
    return "\n".join(lines)


def _zq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _fq(text: str) -> str:
    """A fish single-quoted string (only \\ and \' are escapes there)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish(root: Group) -> str:
    name = root.name
    rows = _table(root)
    lines = [
        f"# {name} completion for fish: {name} completion fish > "
        f"~/.config/fish/completions/{name}.fish",
        f"function __{name}_children",
        "    switch $argv[1]",
    ]
    for path, kids, _, _ in rows:
        if kids:
            lines += [f"        case {_fq(path)}", f"            printf '%s\\n' {_words(kids)}"]
    lines += [
        "    end",
        "end",
        f"function __{name}_at",
        f"    set -l where {name}",
        "    for w in (commandline -opc)[2..-1]",
        f"        if contains -- $w (__{name}_children $where)",
        '            set where "$where $w"',
        "        end",
        "    end",
        '    test "$where" = "$argv[1]"',
        "end",
        f"complete -c {name} -f",
    ]
    helps = {path: text for path, _, _, text in rows}
    for path, kids, flags, _ in rows:
        at = f"-n \"__{name}_at '{path}'\""
        for kid in kids:
            lines.append(
                f"complete -c {name} {at} -a {kid} -d {_fq(helps.get(f'{path} {kid}', ''))}"
            )
        for option in flags:
            switch = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            lines.append(f"complete -c {name} {at} {switch}")
        if not kids:
            lines.append(f"complete -c {name} {at} -F")
    return "\n".join([*lines, ""])


SHELLS = {"bash": bash, "zsh": zsh, "fish": fish}


def script(root: Group, shell: str) -> str:
    """The completion script of ``root`` for ``shell`` (bash, zsh or fish)."""
    return SHELLS[shell](root)
