"""A small declarative layer over argparse: a tree of command groups and commands whose
handlers are imported only when they run.

A command is registered by name with the dotted path of its handler
(``"runtimed.cli.pool_cli:ping"``), a one-line help, and its options (``opt``). Only the
parsers on the path the command line takes are built, and only the chosen handler's
module is imported: building every parser of `runt` costs more than a command's whole
run, and so would importing every command's module. The handler gets each option as a
keyword argument named by its ``dest``; its docstring is the command's ``--help`` text.
"""

from __future__ import annotations

import argparse
import os
import sys

# Not `from typing import TYPE_CHECKING`: importing typing costs a hot command ~3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn


class Opt:
    """One argparse argument: the flags (or the positional's name) and add_argument's
    keywords. ``env`` names an environment variable that gives the default."""

    __slots__ = ("env", "flags", "kwargs")

    def __init__(self, flags: tuple[str, ...], env: str | None, kwargs: dict[str, Any]) -> None:
        self.flags = flags
        self.env = env
        self.kwargs = kwargs

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    @property
    def takes_value(self) -> bool:
        return self.kwargs.get("action") not in ("store_true", "store_false", "count")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        kwargs = dict(self.kwargs)
        if self.env is not None:
            value = os.environ.get(self.env)
            if value:
                kwargs["default"] = value
            kwargs["help"] = f"{kwargs.get('help', '')} [env var: {self.env}]".strip()
        parser.add_argument(*self.flags, **kwargs)


def opt(*flags: str, env: str | None = None, **kwargs: Any) -> Opt:
    """An option (``opt("--socket", help=...)``) or positional (``opt("path")``)."""
    return Opt(flags, env, kwargs)


def flag(*flags: str, help: str | None = None) -> Opt:
    """A boolean switch, False unless given."""
    return Opt(flags, None, {"action": "store_true", "default": False, "help": help})


def bounded_int(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for an int within [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{'' if low is None else low}..{'' if high is None else high}"
            raise argparse.ArgumentTypeError(f"{value} is not in the range {bounds}")
        return value

    parse.__name__ = "int"
    return parse


class Command:
    """A leaf: ``target`` is ``"module:function"``, imported when the command runs."""

    def __init__(self, name: str, target: str, help: str, options: Sequence[Opt]) -> None:
        self.name = name
        self.target = target
        self.help = help
        self.options = list(options)

    def handler(self) -> Callable[..., Any]:
        module, _, function = self.target.partition(":")
        __import__(module)
        return getattr(sys.modules[module], function)  # type: ignore[no-any-return]


class Group:
    """Named subcommands. ``setup`` runs with the group's own options before any command
    below it; ``target`` runs when no subcommand is given (else the group's help prints)."""

    def __init__(
        self,
        name: str,
        help: str,
        options: Sequence[Opt] = (),
        description: str | None = None,
        setup: str | None = None,
        target: str | None = None,
    ) -> None:
        self.name = name
        self.help = help
        self.description = description or help
        self.options = list(options)
        self.setup = setup
        self.target = target
        self.children: dict[str, Command | Group] = {}

    def command(self, name: str, target: str, help: str, *options: Opt) -> Command:
        """Register ``name`` -> ``target`` (``"module:function"``) with its options."""
        self.children[name] = Command(name, target, help, options)
        return self.children[name]  # type: ignore[return-value]

    def group(
        self,
        name: str,
        help: str,
        *options: Opt,
        setup: str | None = None,
        target: str | None = None,
    ) -> Group:
        """Register a group of subcommands (``runt pool ...``)."""
        child = Group(name, help, options, setup=setup, target=target)
        self.children[name] = child
        return child


def _describe(doc: str | None, fallback: str) -> str:
    """A handler's docstring as --help text (the first line, then the rest dedented)."""
    if not doc:
        return fallback
    first, _, rest = doc.strip("\n").partition("\n")
    lines = rest.splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join([first.strip(), *(line[cut:] for line in lines)]).strip()


def _choose(root: Group, argv: list[str]) -> tuple[list[Group], Command | None, int]:
    """The groups the command line walks through, the command it names (if any), and
    where in ``argv`` the last chosen name sits (-1: none chosen)."""
    groups, node, at, index = [root], root, -1, 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            break
        if token.startswith("-"):
            option = next((o for o in node.options if token in o.flags), None)
            index += 2 if option is not None and option.takes_value else 1
            continue
        child = node.children.get(token)
        if child is None:
            break
        at = index
        if isinstance(child, Command):
            return groups, child, at
        groups.append(child)
        node = child
        index += 1
    return groups, None, at


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Docstrings keep their paragraphs. The width is found here: argparse would import
    shutil (and with it bz2, lzma, fnmatch) for it on every ``add_argument``."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, the terminal's, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def _parser(prog: str, node: Group | Command, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    for option in node.options:
        option.add_to(parser)
    return parser


def run(root: Group, argv: list[str] | None = None, version: str | None = None) -> None:
    """Parse ``argv`` (default: sys.argv[1:]) against the tree and run the command."""
    argv = sys.argv[1:] if argv is None else argv
    if version is not None and argv == ["--version"]:
        print(f"{root.name} {version}")
        return
    groups, command, at = _choose(root, argv)
    parser = _parser(root.name, root, root.description)
    if version is not None:
        parser.add_argument("--version", action="version", version=f"{root.name} {version}")
    current, prog = parser, root.name
    chosen: list[Group | Command] = [*groups[1:], *([command] if command else [])]
    for node in chosen:
        sub = current.add_subparsers(dest=f"_at_{prog}", metavar="COMMAND")
        prog = f"{prog} {node.name}"
        if isinstance(node, Command):
            described = _describe(node.handler().__doc__, node.help)
        else:
            described = node.description
        current = sub.add_parser(
            node.name,
            help=node.help,
            description=described,
            formatter_class=HelpFormatter,
            allow_abbrev=False,
        )
        for option in node.options:
            option.add_to(current)
    last = groups[-1]
    if command is None:
        _finish_group(current, last, prog, argv[at + 1 :])
    namespace = vars(parser.parse_args(argv))
    for group in groups:
        if group.setup is not None:
            _call(group.setup, namespace, group.options)
    if command is None:
        assert last.target is not None
        _call(last.target, namespace, last.options)
        return
    command.handler()(**_values(namespace, command.options))


def _finish_group(
    parser: argparse.ArgumentParser, group: Group, prog: str, rest: list[str]
) -> None:
    """A command line that stops at a group: its target runs, or its help prints when
    nothing follows (as typer's no_args_is_help did), or argparse names the commands."""
    sub = parser.add_subparsers(
        dest=f"_at_{prog}", metavar="COMMAND", required=group.target is None
    )
    for child in group.children.values():
        sub.add_parser(child.name, help=child.help, formatter_class=HelpFormatter)
    wants_help = "-h" in rest or "--help" in rest
    if group.target is None and not wants_help and all(a.startswith("-") for a in rest):
        parser.print_help()
        raise SystemExit(0)


def _dest(option: Opt) -> str:
    if "dest" in option.kwargs:
        return str(option.kwargs["dest"])
    names = [f for f in option.flags if f.startswith("--")] or list(option.flags)
    return names[0].lstrip("-").replace("-", "_")


def _values(namespace: dict[str, Any], options: list[Opt]) -> dict[str, Any]:
    return {_dest(o): namespace.get(_dest(o)) for o in options}


def _call(target: str, namespace: dict[str, Any], options: list[Opt]) -> None:
    Command("", target, "", options).handler()(**_values(namespace, options))


def usage_error(message: str) -> NoReturn:
    """An error about the command line itself: one line, exit 2 (as argparse's own)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def walk(group: Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Group | Command]]:
    """Every node of the tree with its path from the root (for shell completion)."""
    here = (*path, group.name)
    found: list[tuple[tuple[str, ...], Group | Command]] = [(here, group)]
    for child in group.children.values():
        if isinstance(child, Group):
            found.extend(walk(child, here))
        else:
            found.append(((*here, child.name), child))
    return found
