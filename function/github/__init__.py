"""What the sync needs of GitHub and of its own queue.

``webhook`` the push webhook's signature and payload; ``head`` pinning the branch head to a commit;
``checkout`` a commit's manifests on local disk; ``queue`` rebuild requests through Pub/Sub.
"""
