"""Weekly customer panel: point-in-time state features, segments and cohorts."""
