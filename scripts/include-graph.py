#!/usr/bin/python3
"""Fail when the modules of server/ include each other in a cycle.

A module is a file stem: server/router.c and server/router.h are one
module, "router". An edge a -> b is a quoted #include "b.h" in a.c or a.h;
a file including its own module's header is not an edge. Angle-bracket
includes (system and installed headers) are not part of the graph.

The graph has to be a DAG so the layering described in doc/ARCHITECTURE.md
holds: a module may use only modules below it, never one that uses it back.

There is no list of allowed exceptions: every cycle fails. An upward call
goes through a callback or a handler table set by the layer above.

Usage: include-graph.py [--dot] [SERVER_DIR]
Exit status 0 without cycles, 1 with (each cycle is printed), 2 on misuse.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(filename):
    return os.path.splitext(os.path.basename(filename))[0]


def read_graph(server_dir):
    """Map each module to the set of modules it includes."""
    graph = {}
    for name in sorted(os.listdir(server_dir)):
        if not name.endswith((".c", ".h")):
            continue
        here = module_of(name)
        graph.setdefault(here, set())
        with open(os.path.join(server_dir, name), encoding="utf-8") as f:
            text = f.read()
        for target in INCLUDE.findall(text):
            # Only headers of this directory are modules; "myxid/plugin.h"
            # is the installed plugin ABI, shared with the plugins.
            if not os.path.exists(os.path.join(server_dir, target)):
                continue
            there = module_of(target)
            if there != here:
                graph[here].add(there)
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm, iterative; returns the components of size > 1."""
    index, low, on_stack = {}, {}, set()
    stack, found, counter = [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def one_cycle(graph, component):
    """A shortest cycle through the component's first member, for the report."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                return paths[node] + [start]
            if child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    return component


def main(argv):
    args = []
    for arg in argv[1:]:
        if not arg.startswith("--"):
            args.append(arg)
        elif arg != "--dot":
            args = None
            break
    if args is None or len(args) > 1:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    server_dir = args[0] if args else os.path.join(
        os.environ.get("MYXID_SRCDIR",
                       os.path.join(os.path.dirname(__file__), "..")),
        "server")
    graph = read_graph(server_dir)
    if "--dot" in argv:
        print("digraph server {")
        for node in sorted(graph):
            for child in sorted(graph[node]):
                print(f'  "{node}" -> "{child}";')
        print("}")
        return 0
    cycles = strongly_connected(graph)
    edges = sum(len(v) for v in graph.values())
    if not cycles:
        print(f"include graph of {server_dir}: {len(graph)} modules, "
              f"{edges} edges, no cycle")
        return 0
    for component in cycles:
        print("cycle among " + ", ".join(component) + ": "
              + " -> ".join(one_cycle(graph, component)))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
