-- Loads the gate's Python package (plpython/embedding_gate/) into this session's Python,
-- once. Placeholders (in double braces): python_sources, a dict literal of the package's
-- module sources; python_key, which names those exact sources in PL/Python's GD.
CREATE OR REPLACE FUNCTION embedding_gate._python_package() RETURNS void
LANGUAGE plpython3u
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $python$
import importlib
import importlib.abc
import importlib.util
import sys

sources = {{python_sources}}
name = "embedding_gate_" + "{{python_key}}".split(":")[1]


class Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the package and its modules in `sources`, nowhere else."""

    def part(self, fullname):
        if fullname == name:
            return "__init__"
        if fullname.startswith(name + "."):
            return fullname[len(name) + 1 :]
        return None

    def find_spec(self, fullname, path=None, target=None):
        part = self.part(fullname)
        if part not in sources:
            return None
        origin = "plpython/embedding_gate/" + part + ".py"
        return importlib.util.spec_from_loader(
            fullname, self, origin=origin, is_package=part == "__init__"
        )

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        # PL/Python indents every line of a function body with a tab: undo that
        source = sources[self.part(module.__name__)].replace("\n\t", "\n")
        exec(compile(source, module.__spec__.origin, "exec"), module.__dict__)


finder = Sources()
sys.meta_path.insert(0, finder)
try:
    package = importlib.import_module(name)
    for part in sources:
        if part != "__init__":
            importlib.import_module(name + "." + part)
finally:
    sys.meta_path.remove(finder)
GD["{{python_key}}"] = package
$python$;
COMMENT ON FUNCTION embedding_gate._python_package() IS
    'Loads the gate''s Python package (plpython/embedding_gate/, its sources installed here) '
    'into the session.';
