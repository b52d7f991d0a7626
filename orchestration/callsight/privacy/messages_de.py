"""German text of the processing record (record_document.py): English template -> German template with
the same parameters, in the terms of the GDPR (DSGVO), the BetrVG and ProCall."""

RECORD_DE: dict[str, str] = {
    # headings and framing
    "callsight: record of processing activities (GDPR Art. 30): call journal analytics": (
        "callsight: Verzeichnis von Verarbeitungstätigkeiten (Art. 30 DSGVO): Auswertung des Anrufjournals"
    ),
    "Generated {today} by callsight {version} from the live configuration: org directory `{directory}`, "
    "policy `{policy}`, warehouse `{served}`. It contains no call data, only configuration, counts and dates.": (
        "Erstellt am {today} von callsight {version} aus der laufenden Konfiguration: Organisationsverzeichnis "
        "`{directory}`, Richtlinie `{policy}`, Warehouse `{served}`. Es enthält keine Anrufdaten, nur "
        "Konfiguration, Anzahlen und Daten."
    ),
    "Warehouse in service: built {built}, build fingerprint `{fingerprint}`; built with the current policy "
    "and models: {same}.": (
        "Warehouse im Betrieb: erstellt {built}, Build-Fingerabdruck `{fingerprint}`; mit der aktuellen "
        "Richtlinie und den aktuellen Modellen erstellt: {same}."
    ),
    "yes": "ja",
    "no": "nein",
    "no: the next nightly run rebuilds it": "nein: der nächste Nachtlauf erstellt es neu",
    "No warehouse has been published yet.": "Es wurde noch kein Warehouse veröffentlicht.",
    # purpose, data subjects, categories of data
    "Purpose and data subjects": "Zweck und Kategorien betroffener Personen",
    "The call journal of the telephone system (one row per call leg) is analysed for reachability, service "
    "level, call volume and callbacks of teams. Controller: the employer operating the telephone system "
    "(ProCall) and this callsight site. Data subjects: the employees in the org directory ({users} users in "
    "{groups} groups) and the other parties of their calls.": (
        "Zweck: Das Anrufjournal der Telefonanlage (eine Zeile je Gesprächsabschnitt) wird ausgewertet auf "
        "Erreichbarkeit, Servicelevel, Anrufaufkommen und Rückrufe der Teams. Verantwortlicher: der Arbeitgeber, "
        "der die Telefonanlage (ProCall) und diese callsight-Installation betreibt. Betroffene Personen: die "
        "Beschäftigten im Organisationsverzeichnis ({users} Benutzer in {groups} Gruppen) und ihre "
        "Gesprächspartner."
    ),
    "Data stored, per journal column": "Kategorien personenbezogener Daten, je Journalspalte",
    "The raw store (`warehouse/journal.duckdb`) holds the journal as masked by the policy; it is never "
    "served. The published warehouse holds the marts listed; Superset reads only that file. The data quality "
    "checks keep a record of the journal and warehouse rows that passed (`warehouse/validated_rows.duckdb`): "
    "64-bit hashes of rows and their counts, no values.": (
        "Der Rohdatenspeicher (`warehouse/journal.duckdb`) enthält das Journal, wie es die Richtlinie maskiert; "
        "er wird nie ausgeliefert. Das veröffentlichte Warehouse enthält die aufgeführten Marts; Superset liest "
        "nur diese Datei. Die Datenqualitätsprüfungen vermerken die geprüften Journal- und Warehouse-Zeilen "
        "(`warehouse/validated_rows.duckdb`): 64-Bit-Hashwerte der Zeilen und ihre Anzahl, keine Werte."
    ),
    "journal column": "Journalspalte",
    "what": "Inhalt",
    "personal data of": "personenbezogene Daten von",
    "raw store": "Rohdatenspeicher",
    "published warehouse (marts)": "veröffentlichtes Warehouse (Marts)",
    "private calls": "private Gespräche",
    "on erasure": "bei Löschantrag",
    "employee": "Beschäftigten",
    "other party": "Gesprächspartner",
    "(no warehouse yet)": "(noch kein Warehouse)",
    "cleared": "geleert",
    "kept": "bleibt",
    "not stored": "nicht gespeichert",
    "stored like any other call": "gespeichert wie jeder andere Anruf",
    "last {digits} digits replaced by X": "letzte {digits} Ziffern durch X ersetzt",
    # ProCall's journal columns
    "journal entry id": "ID des Journaleintrags",
    "when the call came in or was started": "Beginn des Anrufs (eingehend oder gewählt)",
    "when the call ended (hang-up)": "Ende des Anrufs (Auflegen)",
    "seconds from start to stop": "Sekunden von Beginn bis Ende",
    "when the call was answered": "Zeitpunkt der Annahme",
    "when the conversation ended": "Ende des Gesprächs",
    "talk time in seconds": "Gesprächsdauer in Sekunden",
    "flag: outbound or inbound": "Kennzeichen: abgehend oder eingehend",
    "flag: internal or external": "Kennzeichen: intern oder extern",
    "number of the line used": "Rufnummer der genutzten Leitung",
    "name of the line": "Name der Leitung",
    "ProCall user last assigned to the line": "zuletzt der Leitung zugeordneter ProCall-Benutzer",
    "local number of the line": "eigene Rufnummer der Leitung",
    "number of the person who forwarded the call": "Rufnummer der Person, die den Anruf weitergeleitet hat",
    "number of the other party": "Rufnummer des Gesprächspartners",
    "name of the other party": "Name des Gesprächspartners",
    "company of the other party": "Firma des Gesprächspartners",
    "contact id of the other party": "Kontakt-ID des Gesprächspartners",
    "id of the contact store": "ID des Kontaktspeichers",
    "id of the contact database": "ID der Kontaktdatenbank",
    "ProCall user name of the agent (also the Superset login)": (
        "ProCall-Benutzername des Mitarbeiters (zugleich die Superset-Anmeldung)"
    ),
    "flag: call successful": "Kennzeichen: Anruf erfolgreich",
    "call note (content)": "Gesprächsnotiz (Inhalt)",
    "flag: entry read": "Kennzeichen: Eintrag gelesen",
    "project chosen for the call": "für den Anruf gewähltes Projekt",
    "id of that project": "ID dieses Projekts",
    "flag: marked private by the user": "Kennzeichen: vom Benutzer als privat markiert",
    "id following a call through forwardings": "ID, die einen Anruf über Weiterleitungen verfolgt",
    # private calls
    "Private calls": "Private Gespräche",
    "Mode in force: `{mode}`: {text}. Times, durations, agent and direction are kept, so a private call "
    "still counts.": (
        "Geltender Modus: `{mode}`: {text}. Zeiten, Dauern, Mitarbeiter und Richtung bleiben erhalten, damit ein "
        "privates Gespräch weiter mitzählt."
    ),
    "the last {digits} digits of the numbers are replaced by X; contact name, company, contact ids and the "
    "call note are not stored": (
        "die letzten {digits} Ziffern der Rufnummern werden durch X ersetzt; Kontaktname, Firma, Kontakt-IDs "
        "und Gesprächsnotiz werden nicht gespeichert"
    ),
    "numbers, contact name, company, contact ids and the call note are not stored": (
        "Rufnummern, Kontaktname, Firma, Kontakt-IDs und Gesprächsnotiz werden nicht gespeichert"
    ),
    "A call is private when the user marked it private or it ran on a private line; private lines "
    "configured: {lines}.": (
        "Ein Gespräch ist privat, wenn der Benutzer es als privat markiert hat oder es über eine private Leitung "
        "lief; eingerichtete private Leitungen: {lines}."
    ),
    "Masking happens in the extract, before anything is written.": (
        "Die Maskierung geschieht beim Einlesen, bevor irgendetwas geschrieben wird."
    ),
    "Call legs in the warehouse: {legs}, of which private: {private}.": (
        "Gesprächsabschnitte im Warehouse: {legs}, davon private Gespräche: {private}."
    ),
    # retention and erasure
    "Retention, look-back and erasure": "Löschfristen, Rückblick und Löschung",
    "Retention: {days} days, measured from the run's date in {tz}. As of {today} calls that started before "
    "{cutoff} are deleted from the raw store, the quarantine and the warehouse by the next nightly run (a call "
    "forwarded across the cutoff goes as a whole). The files are rewritten so deleted values do not linger.": (
        "Löschfrist: {days} Tage, gerechnet vom Datum des Laufs in {tz}. Stand {today} werden Anrufe, die vor "
        "{cutoff} begannen, vom nächsten Nachtlauf aus dem Rohdatenspeicher, der Quarantäne und dem Warehouse "
        "gelöscht (ein über die Frist hinweg weitergeleiteter Anruf als Ganzes). Die Dateien werden neu "
        "geschrieben, damit gelöschte Werte nicht zurückbleiben."
    ),
    "Kept previous builds for rollback: at most {keep}; a kept build holding calls older than retention plus "
    "one night is deleted. Kept now: {kept}.": (
        "Aufbewahrte frühere Builds für ein Zurückrollen: höchstens {keep}; ein aufbewahrter Build mit Anrufen, "
        "die älter als die Löschfrist plus eine Nacht sind, wird gelöscht. Derzeit aufbewahrt: {kept}."
    ),
    "Look-back: each nightly run re-reads the last {days} days of the journal (edits and deletions at the "
    "source are applied).": (
        "Rückblick: jeder Nachtlauf liest die letzten {days} Tage des Journals neu (Änderungen und Löschungen "
        "in der Quelle werden übernommen)."
    ),
    "Calls in the warehouse: {first} to {last}.": "Anrufe im Warehouse: {first} bis {last}.",
    "Erasure requests: unavailable (a nightly run holds the raw store; try again).": (
        "Löschanträge: nicht verfügbar (ein Nachtlauf belegt den Rohdatenspeicher; bitte erneut versuchen)."
    ),
    ", the last on {last}": ", der letzte am {last}",
    "Erasure requests (GDPR Art. 17, `callsight erase`): {requests} ({identifiers} identifiers){when}. "
    "Identifiers are stored only as keyed hashes; matching calls keep their times and durations but lose "
    "numbers, contact name, company, contact ids and note, now and in every later extract.": (
        "Löschanträge (Art. 17 DSGVO, `callsight erase`): {requests} ({identifiers} Kennungen){when}. Kennungen "
        "werden nur als Hashwerte mit geheimem Schlüssel gespeichert; passende Anrufe behalten Zeiten und "
        "Dauern, verlieren aber Rufnummern, Kontaktname, Firma, Kontakt-IDs und Notiz, sofort und bei jedem "
        "späteren Einlesen."
    ),
    "Audit log: {entries} entries (runs, erasures, provisioning), published as `marts.audit_log`.": (
        "Protokoll (Audit-Log): {entries} Einträge (Läufe, Löschungen, Benutzerpflege), veröffentlicht als "
        "`marts.audit_log`."
    ),
    # who sees whose calls
    "Who can see whose calls": "Wer welche Anrufe sieht",
    'Everyone sees their own calls. Leaders and deputies of a group with "journal visible to the group '
    'leader" see the calls of all its members; members of a group with "journal visible to the whole group" '
    "see the calls of all members; several groups give the union. Analysts and admins see all (masked) "
    "calls. Enforced by row-level security on every Superset surface (charts, dashboards, CSV export, SQL "
    "Lab, reports). Counts {source}:": (
        "Jede Person sieht ihre eigenen Anrufe. Gruppenleiter und Stellvertreter einer Gruppe mit „Journal für "
        "den Gruppenleiter sichtbar“ sehen die Anrufe aller Mitglieder; Mitglieder einer Gruppe mit „Journal "
        "für die ganze Gruppe sichtbar“ sehen die Anrufe aller Mitglieder; mehrere Gruppen ergeben die "
        "Vereinigung. Analysten und Administratoren sehen alle (maskierten) Anrufe. Durchgesetzt durch "
        "Zeilenberechtigungen (Row-Level Security) auf jeder Oberfläche von Superset (Diagramme, Dashboards, "
        "CSV-Export, SQL Lab, Berichte). Anzahlen {source}:"
    ),
    "as published in the warehouse (`security.viewer_agents`)": (
        "wie im Warehouse veröffentlicht (`security.viewer_agents`)"
    ),
    "computed from the org directory (no warehouse published yet)": (
        "aus dem Organisationsverzeichnis berechnet (noch kein Warehouse veröffentlicht)"
    ),
    "viewer": "Betrachter",
    "name": "Name",
    "groups": "Gruppen",
    "agents whose calls they see": "Mitarbeiter, deren Anrufe sichtbar sind",
    "beyond that": "darüber hinaus",
    "leader of {group}": "Gruppenleiter von {group}",
    "deputy of {group}": "Stellvertreter von {group}",
    "member of {group}": "Mitglied von {group}",
    "analyst: all masked calls": "Analyst: alle maskierten Anrufe",
    "admin: all": "Administrator: alles",
    "The org directory changed since the warehouse was built: {n} viewer(s) will see a different number of "
    "agents after the next nightly run.": (
        "Das Organisationsverzeichnis hat sich seit der Erstellung des Warehouse geändert: {n} Betrachter "
        "sehen nach dem nächsten Nachtlauf eine andere Anzahl Mitarbeiter."
    ),
    # works council
    "Works-council mode": "Betriebsratsmodus",
    "Call figures per person can serve to monitor performance and behaviour, which needs the works council's "
    "consent (German Works Constitution Act, section 87(1) no. 6). The policy's works-council settings in "
    "force:": (
        "Anrufkennzahlen je Person sind zur Leistungs- und Verhaltenskontrolle geeignet; ihre Einführung "
        "unterliegt der Mitbestimmung des Betriebsrats (§ 87 Abs. 1 Nr. 6 BetrVG). Geltende Einstellungen der "
        "Richtlinie für den Betriebsratsmodus:"
    ),
    "Minimum group size: off - leaders, members and analysts see figures per agent.": (
        "Mindestgruppengröße: aus - Gruppenleiter, Mitglieder und Analysten sehen Kennzahlen je Mitarbeiter."
    ),
    "Minimum group size: {k}. Everybody but admins sees an agent's figures one by one only for members of a "
    "group of at least {k}; other agents' calls are merged under their group. Now shown one by one: {shown} "
    "of {people} people; groups merged: {merged}.": (
        "Mindestgruppengröße: {k}. Alle außer Administratoren sehen Kennzahlen einzelner Mitarbeiter nur für "
        "Mitglieder einer Gruppe mit mindestens {k} Personen; die Anrufe anderer Mitarbeiter werden unter ihrer "
        "Gruppe zusammengefasst. Derzeit einzeln ausgewiesen: {shown} von {people} Personen; zusammengefasste "
        "Gruppen: {merged}."
    ),
    "Analysts see stable pseudonyms instead of names (keyed hash, CALLSIGHT_PSEUDONYM_KEY).": (
        "Analysten sehen gleichbleibende Pseudonyme statt Namen (Hashwert mit geheimem Schlüssel, "
        "CALLSIGHT_PSEUDONYM_KEY)."
    ),
    "Pseudonyms for analysts: off - analysts see agents' names.": (
        "Pseudonyme für Analysten: aus - Analysten sehen die Namen der Mitarbeiter."
    ),
    "none": "keine",
    # analysts, admins, recipients
    "Analysts and admins": "Analysten und Administratoren",
    "Analysts (all masked calls, SQL Lab on the analyst schema): {people}": (
        "Analysten (alle maskierten Anrufe, SQL Lab auf dem Analysten-Schema): {people}"
    ),
    "Admins (everything in Superset): {people}": "Administratoren (alles in Superset): {people}",
    "Report recipients": "Empfänger der Berichte",
    "Group leaders receive the weekly team reports; a report shows only what its recipient may see.": (
        "Gruppenleiter erhalten die wöchentlichen Teamberichte; ein Bericht zeigt nur, was sein Empfänger sehen darf."
    ),
    "group": "Gruppe",
    "leader": "Gruppenleiter",
    "agents in the report": "Mitarbeiter im Bericht",
    "no group leaders": "keine Gruppenleiter",
    # technical and organisational measures
    "Technical and organisational measures (GDPR Art. 32)": "Technische und organisatorische Maßnahmen (Art. 32 DSGVO)",
    "Private calls are masked in memory before any row is written; malformed rows are quarantined masked, too.": (
        "Private Gespräche werden im Arbeitsspeicher maskiert, bevor eine Zeile geschrieben wird; fehlerhafte "
        "Zeilen kommen ebenfalls maskiert in die Quarantäne."
    ),
    "Superset opens only the published warehouse, read-only and with external file access disabled; raw and "
    "staging tables are not in that file.": (
        "Superset öffnet nur das veröffentlichte Warehouse, schreibgeschützt und ohne Zugriff auf externe "
        "Dateien; Roh- und Staging-Tabellen sind nicht in dieser Datei."
    ),
    "Row-level security per logged-in user; users removed from the directory are deactivated by the next run.": (
        "Zeilenberechtigungen je angemeldetem Benutzer; aus dem Verzeichnis entfernte Benutzer werden beim "
        "nächsten Lauf deaktiviert."
    ),
    "Erasure identifiers are hashed with a secret key from the environment (CALLSIGHT_ERASURE_KEY).": (
        "Kennungen aus Löschanträgen werden mit einem geheimen Schlüssel aus der Umgebung gehasht "
        "(CALLSIGHT_ERASURE_KEY)."
    ),
    "The audit log is append-only and hash-chained: an edited or removed entry breaks the chain.": (
        "Das Protokoll wird nur fortgeschrieben und ist per Hash verkettet: ein geänderter oder entfernter "
        "Eintrag bricht die Kette."
    ),
}


# The section on who looked at what (record_access.py).
ACCESS_RECORD_DE: dict[str, str] = {
    "Who looked at what (access log)": "Wer hat was angesehen (Zugriffsprotokoll)",
    "Superset records who opened which dashboard, exported which chart or dashboard and ran which SQL Lab "
    "query. Every night callsight copies these events from Superset's log into its raw store and publishes "
    "them for admins only as `marts.access_log` (dashboard Betrieb, chart Zugriffe): who, when to the minute, "
    "which dashboard and chart - never query text, filter values or data. Purpose: the works council and the "
    "data-protection officer can check who looked at whose figures (German Works Constitution Act, section "
    "87(1) no. 6). Retention: {days} days; older events are deleted every night from callsight's copy and "
    "from Superset's own log.": (
        "Superset protokolliert, wer welches Dashboard geöffnet, welches Diagramm oder Dashboard exportiert "
        "und welche SQL-Lab-Abfrage ausgeführt hat. Jede Nacht kopiert callsight diese Ereignisse aus dem "
        "Protokoll von Superset in seinen Rohdatenspeicher und veröffentlicht sie nur für Administratoren als "
        "`marts.access_log` (Dashboard Betrieb, Diagramm Zugriffe): wer, wann auf die Minute, welches "
        "Dashboard und Diagramm - niemals Abfragetexte, Filterwerte oder Daten. Zweck: Betriebsrat und "
        "Datenschutzbeauftragte können prüfen, wer wessen Zahlen angesehen hat (Leistungs- und "
        "Verhaltenskontrolle, § 87 Abs. 1 Nr. 6 BetrVG). Aufbewahrung: {days} Tage; ältere Ereignisse werden "
        "jede Nacht aus der Kopie von callsight und aus dem Protokoll von Superset gelöscht."
    ),
    "Access events: unavailable (a nightly run holds the raw store; try again).": (
        "Zugriffe: nicht verfügbar (ein Nachtlauf hält den Rohdatenspeicher; später erneut versuchen)."
    ),
    "Access events in the last {days} days: {total}. Per group and dashboard:": (
        "Zugriffe in den letzten {days} Tagen: {total}. Je Gruppe und Dashboard:"
    ),
    "group": "Gruppe",
    "dashboard": "Dashboard",
    "access": "Zugriff",
    "events": "Anzahl",
    "no group": "keine Gruppe",
    "dashboard opened": "Dashboard geöffnet",
    "chart exported": "Diagramm exportiert",
    "dashboard exported": "Dashboard exportiert",
    "SQL Lab query": "SQL-Lab-Abfrage",
    "SQL Lab export": "SQL-Lab-Export",
}
