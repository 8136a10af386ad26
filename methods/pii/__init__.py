from .method import *  # importing registers the method
