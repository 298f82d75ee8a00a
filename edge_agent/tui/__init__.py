"""`edge-agent tui`: a live view of the mesh (devices, jobs, stability) in Textual.

Only this package imports Textual. Data flows one way: a background MQTT
subscriber (feed.py) posts messages (messages.py) to the app, the app folds
them into plain state (state.py, jobs.py, utilisation.py) and widgets render
that state on a timer.
"""
