"""Plugin hooks (pluggy): the hook specifications, the built-in plugin, the plugin
manager with entry-point loading, and `Plugins`, the guarded way the runtime calls them.

`specs` imports nothing of qrpc at run time but the read-only `NodeView`
and the `Tracer` protocol, so it stays at the bottom of the import graph.
"""
