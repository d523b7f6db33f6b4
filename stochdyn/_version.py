#: the version of stochdyn (recorded in every Dataset's attributes)
__version__ = "0.1.0"
