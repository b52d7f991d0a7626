"""German text of the mails callsight sends (notify.py): English template -> German template, the same
parameters (facts) in both."""

MAIL_DE: dict[str, str] = {
    # failure mail
    "[callsight] nightly run failed on {site} ({partitions})": (
        "[callsight] Nachtlauf fehlgeschlagen auf {site} ({partitions})"
    ),
    "The callsight job '{job}' failed on {site}.": "Der callsight-Job '{job}' ist auf {site} fehlgeschlagen.",
    "Run:        {run}": "Lauf:        {run}",
    "Partitions: {partitions}": "Partitionen: {partitions}",
    "The warehouse was published before the failure (a later step failed).": (
        "Das Warehouse wurde vor dem Fehler veröffentlicht (ein späterer Schritt ist fehlgeschlagen)."
    ),
    "Nothing was published: Superset keeps serving the last good warehouse.": (
        "Nichts wurde veröffentlicht: Superset liefert weiter das letzte fehlerfreie Warehouse aus."
    ),
    "Failed steps:": "Fehlgeschlagene Schritte:",
    "  - (none recorded)": "  - (keine erfasst)",
    "Failed data-quality checks:": "Fehlgeschlagene Datenqualitätsprüfungen:",
    "Failed expectations:": "Nicht erfüllte Erwartungen (Expectations):",
    "Details: the run in Dagster (callsight serve: http://127.0.0.1:3000/runs/{run})": (
        "Einzelheiten: der Lauf in Dagster (callsight serve: http://127.0.0.1:3000/runs/{run})"
    ),
    "and the logs in CALLSIGHT_HOME/logs. `callsight dq-docs` shows the data-quality results.": (
        "und die Protokolle in CALLSIGHT_HOME/logs. `callsight dq-docs` zeigt die Ergebnisse der "
        "Datenqualitätsprüfungen."
    ),
    "This mail contains no call data.": "Diese Mail enthält keine Anrufdaten.",
    # silence alerts
    "the served warehouse is stale": "Warehouse nicht veröffentlicht seit {published}",
    "(time unknown)": "(Zeitpunkt unbekannt)",
    "a nightly run was killed": "Nachtlauf abgebrochen",
    "[callsight] RECOVERED: {title} on {site}": "[callsight] Wieder in Ordnung auf {site}: {title}",
    "[callsight] ALERT: {title} on {site}": "[callsight] STÖRUNG auf {site}: {title}",
    "Recovered on {site}: {title}.": "Wieder in Ordnung auf {site}: {title}.",
    "Alert on {site}: {title}.": "Störung auf {site}: {title}.",
    "Incident:  {kind}": "Störung:    {kind}",
    "Incident: {kind}": "Störung:    {kind}",
    "Since:     {since}": "Seit:       {since}",
    "Since:    {since}": "Seit:       {since}",
    "Recovered: {at}": "Behoben:    {at}",
    "Published: {published}": "Zuletzt veröffentlicht: {published}",
    "It was:    {summary}": "Befund:     {summary}",
    "Now:      {summary}": "Befund:     {summary}",
    "Nothing to do. `callsight health` shows the state of every part.": (
        "Nichts zu tun. `callsight health` zeigt den Zustand aller Teile."
    ),
    "You get one mail now and one when it recovers, not one per check.": (
        "Sie erhalten jetzt eine Mail und eine, wenn es wieder in Ordnung ist, nicht eine je Prüfung."
    ),
    "No warehouse was published for longer than CALLSIGHT_STALE_AFTER_HOURS: the nightly runs fail,": (
        "Länger als CALLSIGHT_STALE_AFTER_HOURS wurde kein Warehouse veröffentlicht: die Nachtläufe schlagen fehl,"
    ),
    "do not start, or were killed. Superset keeps serving the last good build.": (
        "starten nicht oder wurden abgebrochen. Superset liefert weiter den letzten fehlerfreien Build aus."
    ),
    "Look at: the nightly runs in Dagster (http://127.0.0.1:3000/runs), `callsight health`,": (
        "Zu prüfen: die Nachtläufe in Dagster (http://127.0.0.1:3000/runs), `callsight health`,"
    ),
    "CALLSIGHT_HOME/logs, and whether the Dagster daemon (schedule nightly_0200) is running.": (
        "CALLSIGHT_HOME/logs und ob der Dagster-Daemon (Zeitplan nightly_0200) läuft."
    ),
    "A nightly run started and never finished: its process died (power cut, OOM killer, kill -9)": (
        "Ein Nachtlauf hat begonnen und nie geendet: sein Prozess ist beendet worden (Stromausfall, OOM-Killer, "
        "kill -9)"
    ),
    "or is hung. Nothing was published by it; Superset keeps serving the last good build.": (
        "oder hängt. Er hat nichts veröffentlicht; Superset liefert weiter den letzten fehlerfreien Build aus."
    ),
    "Look at: the kernel log for the OOM killer (journalctl -k), CALLSIGHT_HOME/logs, the run in": (
        "Zu prüfen: das Kernel-Protokoll auf den OOM-Killer (journalctl -k), CALLSIGHT_HOME/logs, den Lauf in"
    ),
    "Dagster (mark it canceled there), then start the night again with `callsight run`.": (
        "Dagster (dort als abgebrochen markieren), dann den Nachtlauf mit `callsight run` neu starten."
    ),
    # incident summaries (defs/audit/silence.py)
    "served warehouse stale: published {hours} h ago (limit {limit} h)": (
        "ausgeliefertes Warehouse veraltet: vor {hours} h veröffentlicht (Grenze {limit} h)"
    ),
    "served warehouse no published warehouse (or no build_info in it)": (
        "kein veröffentlichtes Warehouse (oder keine build_info darin)"
    ),
    "night {run} started {hours} h ago, never finished ({said})": (
        "Nachtlauf {run} vor {hours} h gestartet, nie beendet ({said})"
    ),
    "Dagster says {status}": "laut Dagster {status}",
    "unknown to Dagster": "Dagster unbekannt",
}
