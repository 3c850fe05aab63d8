"""The local stack: every process of the platform on one machine (`leadersboard up`, and the tests)."""
