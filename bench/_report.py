"""Rendering a run (the results.json document) as text or as the README's markdown tables."""

from __future__ import annotations

from typing import Any


def _time(us: float) -> str:
    if us >= 1000:
        return f"{us / 1000:,.1f} ms"
    return f"{us:.2f} µs" if us < 10 else f"{us:.1f} µs"


def _value(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:,.2f}x" if value < 100 else f"{value:,.0f}x"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:,.0f} {unit}"


def _rows(doc: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    measured, targets = [], []
    for name, w in doc["workloads"].items():
        first = True
        base = w["variants"].get(w["baseline"]) if w["baseline"] else None
        for v in w["variants"].values():
            ratio, cpu = v["ratio_to_baseline"], v.get("cpu_per_op_us")
            cpu_ratio = cpu / base["cpu_per_op_us"] if cpu is not None and base and base.get("cpu_per_op_us") else None
            rate = v["ops_per_s"]
            measured.append([name if first else "", v["label"], _time(v["per_op_us"]), f"{rate:,.0f}" if rate >= 100 else f"{rate:.2g}",
                             "" if ratio is None else f"{ratio:.2f}", "" if cpu is None else _time(cpu),
                             "" if cpu_ratio is None else f"{cpu_ratio:.2f}"])
            first = False
        for extra, value in w["extra"].items():
            if isinstance(value, list):  # raw samples: for the JSON, not the table
                continue
            shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
            measured.append([name if first else "", extra, shown, "", "", "", ""])
            first = False
        for c in w["checks"]:
            targets.append([c["name"], _value(c["value"], c["unit"]), f"{c['op']} {_value(c['limit'], c['unit'])}",
                            "PASS" if c["pass"] else "MISS"])
    return measured, targets


MEASURED = ["workload", "variant", "median per op", "ops/s", "x baseline", "client CPU per op", "CPU x baseline"]
TARGETS = ["target", "measured", "target", "result"]


def _parser_words(doc: dict[str, Any]) -> str:
    """Which parser the run's clients used: hiredis, or redis-py's own (``--no-hiredis``, or hiredis not installed)."""
    installed = doc["machine"].get("hiredis")
    if doc.get("hiredis", bool(installed)):  # runs saved before the "hiredis" field used hiredis whenever installed
        return f"with hiredis {installed} (hiredis: on)"
    return "with its pure-Python parser (hiredis: off" + (f", {installed} installed, --no-hiredis)" if installed else ", not installed)")


def _machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_start"])
    end = ", ".join(f"{x:.2f}" for x in m.get("load_average_end", []))
    return (f"{m['cpu']}, {m['cores']} cores, {m['os']}; {m['python']}, redis-py {m['redis_py']} {_parser_words(doc)}"
            f", redis-server {m['redis_server']}"
            f"{', cashews ' + m['cashews'] if m['cashews'] else ''}"
            f"{', dogpile.cache ' + m['dogpile_cache'] if m['dogpile_cache'] else ''}; "
            f"load average {load} at start, {end} at end; {doc['mode']} run, {doc['rounds']} rounds, medians")


def _notes(doc: dict[str, Any]) -> list[str]:
    return [f"{name}: {note}" for name, w in doc["workloads"].items() for note in w["notes"]]


def text(doc: dict[str, Any]) -> str:
    measured, targets = _rows(doc)

    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        line = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        return [line(header), "  ".join("-" * w for w in widths), *[line(r) for r in rows]]

    out = [_machine_line(doc), "", *table(MEASURED, measured), "", *table(TARGETS, targets), ""]
    out += [f"note  {n}" for n in _notes(doc)]
    passed = sum(r[3] == "PASS" for r in targets)
    out.append(f"\n{passed} of {len(targets)} targets met")
    return "\n".join(out)


def markdown(doc: dict[str, Any]) -> str:
    measured, targets = _rows(doc)

    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                *["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]]

    out = [f"Machine: {_machine_line(doc)}.", "", *table(MEASURED, measured), "", *table(TARGETS, targets), ""]
    out += [f"- {n}" for n in _notes(doc)]
    return "\n".join(out)
