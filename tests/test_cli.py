"""The ``microweb`` command: loading targets, the route table, missing servers."""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import HOST, free_port, start, stop

from microweb import App
from microweb._cli import TargetError, main, routes_table
from microweb._importer import _split, factory_target, load_app, source_dir

ROOT = Path(__file__).resolve().parent.parent


def test_load_app_from_file_and_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert isinstance(load_app("examples/hello.py"), App)
    assert isinstance(load_app("examples/hello.py:app"), App)
    assert isinstance(load_app("examples.mixed_colours:app"), App)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope/missing.py", "no such file"),
        # NOTE: files that are there, said to be missing modules or not loadable, with no why.
        ("pyproject.toml", r"^pyproject.toml is not a Python file: a target is module:attr or "),
        ("pyproject.toml:app", r"^pyproject.toml is not a Python file: .*file.py\[:attr\]$"),
        ("docs/index.md", r"^docs/index.md is not a Python file: a target is module:attr"),
        ("docs/index.md:app", r"^docs/index.md is not a Python file"),
        ("docs/", r"^docs/ is a directory: a target is module:attr or path/to/file.py"),
        ("no_such_module_xyz:app", "cannot import module"),
        ("examples.hello:nothing", "has no attribute"),
        ("examples.hello:App", "not a microweb App"),
        ("examples.hello:index", r"an app factory, serve examples.hello:index\(\)"),
        (
            "examples.hello:app()",
            r"calls an App, not an app factory: serve examples.hello:app, without \(\) or "
            r"--factory$",
        ),
        ("examples.hello:index()", r"needs arguments: .*, app = index\(\.\.\.\)$"),
        ("examples.hello:()", "names nothing to call"),
        # NOTE: Flask's --app takes arguments; this named a missing attribute "index('dev')".
        ("examples.hello:index('dev')", r"passes arguments: .*, app = index\(\.\.\.\)$"),
        ("examples.hello:index( )", r"passes arguments: .*, app = index\(\.\.\.\)$"),
        # NOTE: what --factory makes of the one above: the "()" it adds hid the arguments.
        ("examples.hello:index('dev')()", r"passes arguments: .*, app = index\(\.\.\.\)$"),
        # NOTE: these were said to pass arguments, "app = index)(...)" and "app = index(...)".
        (
            "examples.hello:index)",
            r"names no attribute: write module:app, or module:create_app\(\)",
        ),
        ("examples.hello:index()()", "names no attribute"),
        ("examples.hello:index(()", "names no attribute"),
        ("examples.hello:in-dex", "names no attribute"),
        # NOTE: importlib raised ValueError and TypeError for these: a traceback.
        (":app", r"':app' names no module: write module:app"),
        (".hello:app", r"'.hello:app' names no module"),
        # NOTE: served the module's app, as if the ":" were not there.
        (
            "examples.hello:",
            r"'examples.hello:' names nothing after ':': write examples.hello:app, or "
            r"examples.hello for its app$",
        ),
    ],
)
def test_bad_targets_say_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(TargetError, match=message):
        load_app(target)


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        # NOTE: app = App, its () left out: "if it is an app factory, serve ...:app()" served
        # an app made anew, with none of the module's routes.
        ("app", r"'.*:app' is the class App itself, not a microweb App: make one, app = App\(\)"),
        ("App", r"is the class App itself, not a microweb App: make one, app = App\(\), reg"),
        # NOTE: Starlette serves a Router; "if it is an app factory, serve ...:Router()" did
        # for the class, and nothing more for a router.
        ("router", r"'.*:router' is a Router, not a microweb App: include it in one, app = App"),
        ("Router", r"is the class Router, not a microweb App: include a router in one, app = "),
        ("ShopApp", r"is a class, not a microweb App; if it is an app factory, serve "),
    ],
)
def test_the_classes_and_a_router_as_targets_say_what_to_serve(
    tmp_path: Path, attr: str, message: str
) -> None:
    path = tmp_path / "ported.py"
    path.write_text(
        "from microweb import App, Router\napp = App\nrouter = Router()\n"
        "class ShopApp(App):\n    pass\n"
    )
    with pytest.raises(TargetError, match=message):
        load_app(f"{path}:{attr}")


@pytest.mark.parametrize("attr", ["App", "app"])
def test_the_class_app_called_as_a_factory_says_what_to_serve(tmp_path: Path, attr: str) -> None:
    # NOTE: "ported.py:App()" (or --factory) served an app made anew, with no routes: the
    # same mistake as "ported.py:App", which said what to serve.
    path = tmp_path / "ported.py"
    path.write_text("from microweb import App\napp = App\n")
    for target in (f"{path}:{attr}()", factory_target(f"{path}:{attr}")):
        with pytest.raises(TargetError) as raised:
            load_app(target)
        assert str(raised.value) == (
            f"{target!r} calls the class App itself, which makes an app with none of the "
            "module's routes: make one, app = App(), register the routes on it and serve that"
        )


def test_a_class_that_makes_no_app_is_not_called_a_factory(tmp_path: Path) -> None:
    # NOTE: an ASGI app written as a class (as ASGI 2 had them) was told "if it is an app
    # factory, serve ...:Asgi()", which then needed arguments, or made no App.
    path = tmp_path / "ported.py"
    path.write_text(
        "class Asgi:\n    def __init__(self, scope):\n        self.scope = scope\n"
        "class Plain:\n    pass\n"
    )
    for attr in ("Asgi", "Plain"):
        with pytest.raises(TargetError) as raised:
            load_app(f"{path}:{attr}")
        assert str(raised.value) == (
            f"'{path}:{attr}' is the class {attr}, not a microweb App: microweb serve serves "
            "an App, app = App(), or an app factory that returns one"
        )


@pytest.mark.parametrize("entrypoint", ["as_wsgi", "as_asgi"])
@pytest.mark.parametrize("spelling", ["{}()", "--factory {}"])
def test_a_target_that_calls_an_apps_entrypoint_says_to_serve_the_app(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    entrypoint: str,
    spelling: str,
) -> None:
    # NOTE: "uvicorn --factory mymod:app.as_asgi" ported as it is: the method was called, so
    # as_wsgi() ran the startup hooks (in "microweb routes" too), and the error named what it
    # returned ("an object of type WSGIDriver"), not what to serve.
    (tmp_path / "hooked_app.py").write_text(
        "from microweb import App\napp = App()\nran = []\n\n"
        "@app.on_startup\ndef migrate() -> None:\n    ran.append('startup')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "hooked_app", raising=False)
    target = spelling.format(f"hooked_app:app.{entrypoint}").split()
    assert main(["routes", *target]) == 2
    assert capsys.readouterr().err == (
        f"microweb: error: 'hooked_app:app.{entrypoint}()' calls the App's {entrypoint}(), not "
        "an app factory: serve hooked_app:app, without () or --factory\n"
    )
    module = sys.modules["hooked_app"]
    assert module.ran == []
    assert module.app._plan is None  # NOTE: not compiled either.


@pytest.mark.parametrize(
    ("target", "parts"),
    [
        ("C:\\apps\\shop.py:app", ("C:\\apps\\shop.py", "app", False)),
        ("c:/apps/shop.py", ("c:/apps/shop.py", "app", False)),
        ("D:\\shop.py:create_app()", ("D:\\shop.py", "create_app", True)),
        ("shop:app", ("shop", "app", False)),
    ],
)
def test_a_windows_drive_is_no_separator(target: str, parts: tuple[str, str, bool]) -> None:
    # NOTE: "C:\\apps\\shop.py:app" was the module "C" and the attribute "\\apps\\shop.py:app".
    assert _split(target) == parts


FACTORIES = """
import functools
from microweb import App

app = App()
make = lambda: App()
def create_app(name="shop"):
    return App()
factory = create_app
bound = functools.partial(create_app, "shop")
class ShopApp(App):
    pass
wsgi = app.as_wsgi()
def needs(name):
    return App()
"""


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        # NOTE: the name the target wrote, which the module that calls it imports: a lambda's
        # own name is "<lambda>", an alias's the function's.
        ("make", r"is a function, .*factory, serve .*factories.py:make\(\) \(or add --factory\)$"),
        ("factory", r"is a function, .*factory, serve .*factories.py:factory\(\) \(or add"),
        ("bound", r"is a partial, .*factory, serve .*factories.py:bound\(\) \(or add"),
        ("ShopApp", r"is a class, .*factory, serve .*factories.py:ShopApp\(\) \(or add"),
        # NOTE: what waitress-serve --call and uvicorn --factory take, beside microweb serve.
        ("app.as_wsgi", r"is a method of an App, not the App: serve .*factories.py:app$"),
        ("app.as_asgi", r"is a method of an App, not the App: serve .*factories.py:app$"),
        ("wsgi", r"is a WSGIDriver, made by an App's as_wsgi\(\) or as_asgi\(\): serve the App$"),
    ],
)
def test_a_target_that_makes_an_app_says_what_to_serve(
    tmp_path: Path, attr: str, message: str
) -> None:
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    with pytest.raises(TargetError, match=message):
        load_app(f"{path}:{attr}")


@pytest.mark.parametrize("attr", ["make", "factory", "bound", "ShopApp", "create_app"])
def test_a_target_ending_in_parentheses_serves_what_the_factory_makes(
    tmp_path: Path, attr: str
) -> None:
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    assert isinstance(load_app(f"{path}:{attr}()"), App)


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("wsgi()", r"needs arguments"),
        (
            "app.as_wsgi()",
            r"calls the App's as_wsgi\(\), not an app factory: serve .*:app, without \(\) or "
            r"--factory$",
        ),
        ("FACTORY_NOTE()", r"calls a str, which can't be called$"),
        ("NUMBER()", r"calls an int, which can't be called$"),
        ("NUMBER", r"'.*:NUMBER' is an int, not a microweb App$"),
        ("acreate()", r"is an async def factory: make it a def"),
    ],
)
def test_a_factory_target_that_makes_no_app_says_so(
    tmp_path: Path, attr: str, message: str
) -> None:
    path = tmp_path / "factories.py"
    path.write_text(
        FACTORIES
        + 'FACTORY_NOTE = "not callable"\nNUMBER = 5\n'
        + "async def acreate():\n    return App()\n"
    )
    with pytest.raises(TargetError, match=message):
        load_app(f"{path}:{attr}")


def test_the_factory_flag_calls_the_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "factories.py"
    path.write_text(
        FACTORIES.replace("return App()", "made = App()\n    made.get('/x')(len)\n    return made")
    )
    assert main(["routes", "--factory", f"{path}:create_app"]) == 0
    assert "/x" in capsys.readouterr().out
    assert main(["routes", f"{path}:create_app"]) == 2
    assert "(or add --factory)" in capsys.readouterr().err
    assert main(["routes", "--factory", f"{path}:create_app('dev')"]) == 2
    assert "passes arguments: a factory is called with none" in capsys.readouterr().err
    # NOTE: an App given --factory was told to "leave out the ()", which nobody had written.
    assert main(["routes", "--factory", f"{path}:app"]) == 2
    assert f"serve {path}:app, without () or --factory" in capsys.readouterr().err


def test_main_runs_outside_the_main_thread(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # NOTE: main() took SIGQUIT as its first step, and signal.signal() raises ValueError in
    # any thread but the main one: `routes` run from a thread (a tool, a test) failed.
    path = tmp_path / "threaded.py"
    path.write_text("from microweb import App\napp = App()\napp.get('/x')(len)\n")
    statuses: list[int | BaseException] = []

    def run() -> None:
        try:
            statuses.append(main(["routes", f"{path}:app"]))
        except BaseException as exc:
            statuses.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert statuses == [0]
    assert "/x" in capsys.readouterr().out


def test_a_windows_drive_stays_a_drive_for_factory_and_reload(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # NOTE: "C:/shop.py" is a path with a drive to _split on every system; here a folder "C:".
    (tmp_path / "C:").mkdir()
    (tmp_path / "C:" / "shop.py").write_text(FACTORIES.replace("return App()", "return app"))
    monkeypatch.chdir(tmp_path)
    # NOTE: --factory made it "C:/shop.py()", no such file; the reloader watched the cwd.
    assert main(["routes", "--factory", "C:/shop.py"]) == 2
    assert "'C:/shop.py:app()' calls an App" in capsys.readouterr().err
    assert main(["routes", "--factory", "C:/shop.py:create_app"]) == 0
    assert source_dir("C:/shop.py") == str(tmp_path / "C:")
    with pytest.raises(TargetError, match=r"app = needs\(\.\.\.\)$"):
        load_app("C:/shop.py:needs()")


def test_reload_watches_the_folder_that_holds_a_module_targets_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # NOTE: the current directory was watched for every module target: a package found on
    # sys.path elsewhere (src/, an editable install) was never reloaded, and an unrelated
    # tree (a home directory) was watched whole.
    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    (src / "watchedpkg").mkdir(parents=True)
    (src / "watchedpkg" / "__init__.py").write_text("")
    (src / "watchedpkg" / "web.py").write_text("")
    (src / "watchedmod.py").write_text("")
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.syspath_prepend(str(src))
    assert source_dir("watchedpkg.web:app") == str(src)
    assert source_dir("watchedpkg:app") == str(src)
    assert source_dir("watchedmod:app") == str(src)
    # NOTE: one found nowhere (the load says why) or with no folder of its own: the cwd.
    assert source_dir("no_such_module_xyz:app") == str(elsewhere)
    assert source_dir("sys:app") == str(elsewhere)


def test_reload_watches_the_cwds_package_that_shares_a_name_with_an_installed_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # NOTE: the main process looked the name up without the cwd, which the child imports it
    # from first: a project's test/ package found the standard library's "test", and its
    # folder (the whole standard library) was watched, the project's edits never reloaded.
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "__init__.py").write_text("")
    (tmp_path / "test" / "app.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    assert source_dir("test.app:app") == str(tmp_path)


def test_reload_watches_an_installed_package_not_the_whole_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # NOTE: a package in site-packages: its own folder, not every installed package's.
    installed = tmp_path / "lib" / "site-packages"
    (installed / "installedpkg").mkdir(parents=True)
    (installed / "installedpkg" / "__init__.py").write_text("")
    (installed / "installedmod.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(installed))
    assert source_dir("installedpkg:app") == str(installed / "installedpkg")
    assert source_dir("installedmod:app") == str(tmp_path)


def test_routes_table_lists_method_template_name_handler_colour() -> None:
    app = App()

    @app.route("/items/{item_id:int}", methods=["GET", "DELETE"], name="item")
    async def item(request: Any, item_id: int) -> None:
        return None

    lines = routes_table(app).splitlines()
    assert lines[0].split() == ["METHOD", "TEMPLATE", "NAME", "HANDLER", "COLOUR"]
    assert lines[1].split()[:3] == ["DELETE", "/items/{item_id:int}", "item"]
    assert lines[1].split()[-1] == "async"
    assert lines[2].split()[0] == "GET"


def test_routes_table_sorts_the_methods_of_one_template_across_handlers() -> None:
    app = App()

    @app.get("/items")
    def list_items(request: Any) -> None:
        return None

    @app.route("/items", methods=["POST", "DELETE"])
    def change_items(request: Any) -> None:
        return None

    lines = routes_table(app).splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["DELETE", "GET", "POST"]


class _Resource:
    async def __call__(self, request: Any) -> str:
        return "resource"


def _page(request: Any, kind: str) -> str:
    return kind


def test_routes_table_names_the_class_of_a_callable_object_or_partial() -> None:
    app = App()
    app.get("/resource", name="resource")(_Resource())
    app.get("/page", name="page")(functools.partial(_page, kind="page"))
    lines = routes_table(app).splitlines()[1:]
    # NOTE: the handler column said "test_cli.?" for both.
    assert [line.split()[3:] for line in lines] == [
        [f"functools.partial({__name__}._page)", "sync"],
        [f"{__name__}._Resource", "async"],
    ]


def test_missing_server_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    real_import = importlib.import_module

    def no_waitress(name: str, package: str | None = None) -> Any:
        if name == "waitress":
            raise ImportError("no waitress here")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_waitress)
    assert main(["serve", "examples/hello.py", "--server", "waitress"]) == 2
    error = capsys.readouterr().err
    # NOTE: not microweb[waitress]: PyPI's microweb is an unrelated project.
    assert (
        "pip install 'waitress>=3.0' (or pip install -e '.[waitress]' in microweb's clone)" in error
    )


def test_python_dash_m_microweb_routes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "microweb", "routes", "examples/hello.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "/hello/{name}" in result.stdout


def test_routes_into_a_pipe_no_one_reads_ends_with_no_traceback() -> None:
    # NOTE: "microweb routes shop:app | head -1" on a long table: BrokenPipeError's traceback,
    # then another as the interpreter flushed stdout at its exit.
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "microweb", "routes", "examples/hello.py"],
            cwd=ROOT,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (1, "")


@pytest.mark.parametrize("command", ["serve", "routes"])
@pytest.mark.parametrize(
    "source", ["raise RuntimeError('boom')\n", None], ids=["raises", "missing"]
)
def test_an_error_into_a_pipe_no_one_reads_still_ends_with_status_2(
    tmp_path: Path, command: str, source: str | None
) -> None:
    # NOTE: "microweb routes shop:app 2>&1 | head -1": the traceback, or the error's line,
    # raised BrokenPipeError out of main(): status 1, where an error in the target is 2.
    if source is not None:
        (tmp_path / "failing_target.py").write_text(source)
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "microweb", command, "failing_target:app"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=writer,
            timeout=30,
        )
    finally:
        os.close(writer)
    assert result.returncode == 2


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="Linux's /dev/full")
def test_routes_into_a_full_disk_says_so_with_no_traceback() -> None:
    # NOTE: OSError (ENOSPC) raised out of main() with its traceback.
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "microweb", "routes", "examples/hello.py"],
            cwd=ROOT,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    assert (result.returncode, result.stderr) == (
        1,
        "microweb: error: cannot write the route table: [Errno 28] No space left on device\n",
    )


@pytest.mark.servers
@pytest.mark.parametrize(
    "options",
    [[], ["--server", "waitress"], ["--workers", "2"]],
    ids=["uvicorn", "waitress", "uvicorn-workers"],
)
def test_serve_starts_a_real_server(options: list[str], tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "microweb", "serve", "examples/hello.py", "--port", str(port)]
    process = start([*command, *options], port=port, log=tmp_path / "serve.log", ready_timeout=15)
    try:
        # NOTE: Uvicorn's workers may still be starting; the listening socket holds the request.
        response = httpx.get(f"http://{HOST}:{port}/hello/cli", timeout=10)
        assert response.status_code == 200
        assert response.text == "Hello, cli!"
    finally:
        stop(process, timeout=10)


def test_waitress_refuses_uvicorn_only_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "examples/hello.py", "--server", "waitress", "--reload"]) == 2
    assert "--workers and --reload are for uvicorn" in capsys.readouterr().err


def test_a_target_file_named_like_a_module_does_not_shadow_it(tmp_path: Path) -> None:
    target = tmp_path / "json.py"
    target.write_text("from microweb import App\napp = App()\n")
    import json

    assert isinstance(load_app(str(target)), App)
    assert sys.modules["json"] is json


def test_help_is_plain_text_and_importing_main_runs_nothing() -> None:
    # NOTE: --help showed the module docstring's ``markup``; importing microweb.__main__ (a
    # tool that walks every module) ran the command line, which exited.
    result = subprocess.run(
        [sys.executable, "-c", "import microweb.__main__; print('imported')"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (0, "imported\n"), result.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "microweb", "--help"], capture_output=True, text=True, timeout=30
    )
    assert shown.returncode == 0
    assert "Serve an app with Uvicorn or Waitress" in shown.stdout
    assert "``" not in shown.stdout


@pytest.mark.parametrize("command", ["serve", "routes"])
def test_a_target_that_raises_at_import_is_an_error_in_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # NOTE: the error came out of main() (Python's status 1, undocumented) where the docs
    # give status 2 for an error in the target; its traceback is still printed, as the one
    # way to find the line.
    target = tmp_path / "raises_at_import.py"
    target.write_text("from microweb import App\napp = App()\nraise RuntimeError('no config')\n")
    assert main([command, str(target)]) == 2
    err = capsys.readouterr().err
    assert "raise RuntimeError('no config')" in err  # NOTE: the traceback, with the line.
    assert err.rstrip().endswith(
        f"microweb: error: cannot load {target}: RuntimeError: no config (traceback above)"
    )


@pytest.mark.parametrize("code", [0, 3, "'usage: shop [--db DB]'"])
def test_a_target_that_exits_at_import_is_an_error_in_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], code: object
) -> None:
    # NOTE: its own status came out (3 passed for "startup failed", 0 for a clean stop), with
    # no word of microweb's.
    target = tmp_path / "exits_at_import.py"
    target.write_text(f"import sys\nfrom microweb import App\napp = App()\nsys.exit({code})\n")
    assert main(["serve", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"sys.exit({code})" in err  # NOTE: the traceback, with the line.
    assert err.rstrip().endswith(
        f"microweb: error: cannot load {target}: its code called sys.exit({code}) (traceback above)"
    )


def test_version_says_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    # NOTE: what a newcomer types first; it said "the following arguments are required".
    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert capsys.readouterr().out == f"microweb {importlib.metadata.version('microweb')}\n"


@pytest.mark.parametrize("command", ["serve", "routes"])
def test_a_target_that_imports_a_missing_module_is_an_error_in_the_target(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    # NOTE: its ModuleNotFoundError was taken for the target's own absence: "cannot import
    # module 'needs_a_dependency': No module named ..." and no traceback, so no line to fix.
    (tmp_path / "needs_a_dependency.py").write_text(
        "from microweb import App\nimport no_such_dependency_xyz\napp = App()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "needs_a_dependency", raising=False)
    assert main([command, "needs_a_dependency:app"]) == 2
    err = capsys.readouterr().err
    assert "import no_such_dependency_xyz" in err  # NOTE: the traceback, with the line.
    assert err.rstrip().endswith(
        "microweb: error: cannot load needs_a_dependency:app: ModuleNotFoundError: "
        "No module named 'no_such_dependency_xyz' (traceback above)"
    )


@pytest.mark.parametrize(
    ("target", "missing"),
    [
        ("no_such_package_xyz.app:app", "no_such_package_xyz"),
        ("a_package_here.no_such_module:app", "a_package_here.no_such_module"),
    ],
)
def test_a_target_module_that_is_missing_is_said_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
    missing: str,
) -> None:
    (tmp_path / "a_package_here").mkdir()
    (tmp_path / "a_package_here" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "a_package_here", raising=False)
    assert main(["routes", target]) == 2
    module = target.partition(":")[0]
    assert capsys.readouterr().err == (
        f"microweb: error: cannot import module {module!r}: No module named {missing!r}\n"
    )
