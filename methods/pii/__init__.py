from .method import *  # noqa: F401,F403  (registers the method)
