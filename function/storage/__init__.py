"""Where the digest index is kept: one object, in Cloud Storage or a local file, and small records beside it.

``base`` what every store offers (``IndexStore``, ``Records``, ``Stored``, ``Confirmation``); ``errors``
what can go wrong; ``uri`` which store a URI names (``open_store``); ``gcs`` and ``local`` the two stores.
Nothing here reads what the object holds.
"""
