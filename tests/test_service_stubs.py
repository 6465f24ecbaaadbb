"""The committed stubs (package annlib.v1) are exactly what the protos generate."""
import importlib.util
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "service" / "generated" / "annlib" / "v1"


def load_regenerator():
    spec = importlib.util.spec_from_file_location("regenerate_stubs", ROOT / "service" / "regenerate_stubs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_match_the_protos(tmp_path):
    generated = load_regenerator().generate(tmp_path)
    assert generated, "protoc wrote nothing"
    names = {p.name for p in generated}
    assert names == {p.name for p in COMMITTED.iterdir() if p.suffix in (".py", ".pyi") and p.name != "__init__.py"}
    for path in generated:
        assert path.read_text() == (COMMITTED / path.name).read_text(), (
            f"{path.name} differs from the protos; run: python service/regenerate_stubs.py")


def test_installed_stubs_are_the_committed_ones():
    import annlib.v1.service_pb2 as installed

    assert Path(installed.__file__).read_text() == (COMMITTED / "service_pb2.py").read_text()
