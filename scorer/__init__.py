"""The scorer: scores benchmark jobs' predictions against the reference part no job can read (issue 13)."""
