from runestone.cli import console_main

console_main()
