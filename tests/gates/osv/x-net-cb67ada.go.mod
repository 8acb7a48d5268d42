module golang.org/x/net

go 1.17

require (
	golang.org/x/sys v0.0.0-20221010170243-090e33056c14
	golang.org/x/term v0.0.0-20210927222741-03fcf44c2211
	golang.org/x/text v0.3.7
)
