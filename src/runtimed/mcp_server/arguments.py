"""The tools' shared argument types, each with its bound.

Every argument an agent sends is bounded in its schema (sizes, counts, timeouts), so the
SDK refuses an out-of-bound value before the tool runs, with the bound in the message
(``String should have at most 10000000 characters``). The checks that need more than a
schema (a path, a package spec, an execution id) are in the tools and their helpers.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from runtimed.mcp_server.dependencies import MAX_SPEC_LEN, MAX_SPECS

#: Characters of a cell's source, or of any text that goes into one.
MAX_SOURCE_CHARS = 10_000_000
#: Characters of a regular expression.
MAX_PATTERN_CHARS = 10_000
#: Characters of an id (cell ids are at most 64).
MAX_ID_CHARS = 200
#: Characters of a path (PATH_MAX on Linux).
MAX_PATH_CHARS = 4096
#: A cell index or count.
MAX_INDEX = 1_000_000
#: A character offset into an output (outputs may be far larger than a source).
MAX_OFFSET = 1 << 40
#: Default seconds a tool waits for a cell before answering with its execution id.
DEFAULT_TIMEOUT = 30.0
#: The most a tool waits in one call (MCP hosts give up on long calls).
MAX_TIMEOUT = 3600.0

#: Text that goes into a cell's source.
Text = Annotated[str, Field(max_length=MAX_SOURCE_CHARS)]
CellId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The cell's id, e.g. cell-3f2a… (get_all_cells lists them)",
    ),
]
NotebookArg = Annotated[
    str | None,
    Field(
        max_length=MAX_PATH_CHARS,
        description="Id or path of an open notebook to act on; omit for the current one "
        "(the last opened or created)",
    ),
]
PathArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Path of an existing .ipynb file (relative to the working dir)",
    ),
]
NewPathArg = Annotated[
    str | None,
    Field(
        max_length=MAX_PATH_CHARS,
        description="Where to create the .ipynb (must not exist yet); omit for an "
        "untitled notebook that lives in runtimed until save_notebook(path=...)",
    ),
]
SavePathArg = Annotated[
    str | None,
    Field(
        max_length=MAX_PATH_CHARS,
        description="Write to this .ipynb path (relative to the working dir); omit to save "
        "to the notebook's file",
    ),
]
RunArg = Annotated[
    bool, Field(description="Also execute the cell (code cells) and return its outputs")
]
EditTimeout = Annotated[
    float,
    Field(
        gt=0,
        le=MAX_TIMEOUT,
        description="With run: seconds to wait for the outputs (0 < timeout <= 3600); past "
        "it you get an execution_id for get_results and the cell keeps running",
    ),
]
ExecTimeout = Annotated[
    float,
    Field(
        gt=0,
        le=MAX_TIMEOUT,
        description="Seconds to wait for the outputs (0 < timeout <= 3600); past it you get "
        "an execution_id for get_results, and the cell keeps running",
    ),
]
Index = Annotated[int, Field(ge=0, le=MAX_INDEX)]
Spec = Annotated[str, Field(max_length=MAX_SPEC_LEN)]
SpecList = Annotated[list[Spec], Field(max_length=MAX_SPECS)]
Packages = Annotated[
    SpecList | Spec,
    Field(description="A PEP 508 spec such as 'pandas>=2.2', or a list of them (at most 200)"),
]
Specs = Annotated[
    SpecList | None,
    Field(
        description="Python packages for its own environment, as PEP 508 specs "
        "(e.g. ['pandas>=2.2', 'matplotlib']); installed before the kernel starts"
    ),
]
