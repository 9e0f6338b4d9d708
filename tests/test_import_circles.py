"""No import circles in the packages that used to have them: the search space (model <- parse <-
search_space) and the worker's trainers (contract <- steps <- sanity, lr_range <- run <- objective).
Imports inside functions count too (grimp reads them), so a circle cannot hide there."""
from __future__ import annotations

import itertools

import pytest

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter")

PACKAGES = ("tuneserve_service.space", "tuneserve_workers.training")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("tuneserve_service", "tuneserve_workers", include_external_packages=False, cache_dir=None)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_circle_inside(graph, package):
    modules = sorted(m for m in graph.find_descendants(package))
    circles = []
    for a, b in itertools.permutations(modules, 2):
        if graph.direct_import_exists(importer=a, imported=b):
            back = graph.find_shortest_chain(importer=b, imported=a)
            if back:
                circles.append(" -> ".join((a, *back)))
    assert not circles, "import circles:\n" + "\n".join(circles)
