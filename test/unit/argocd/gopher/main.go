// Command argocd-health-runner runs an Argo CD health check the way Argo CD's application
// controller runs one configured in argocd-cm: gopher-lua with its standard libraries skipped,
// then only the package, base and table libraries and an os table holding time and date opened,
// the object as the global `obj`, and the chunk's return value read as { status, message }.
//
//	argocd-health-runner HEALTH_LUA < object.json
//
// Prints the status on the first line and the message after it; exits 1 when the script fails,
// returns something other than a table, or returns a status Argo CD does not know.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
)

var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true,
	"Unknown": true,
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health-runner HEALTH_LUA < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(2, err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(2, err)
	}
	var obj map[string]any
	if err := json.Unmarshal(input, &obj); err != nil {
		fail(2, fmt.Errorf("reading the object: %w", err))
	}

	status, message, err := run(string(script), obj)
	if err != nil {
		fail(1, err)
	}
	fmt.Printf("%s\n%s", status, message)
}

func run(script string, obj map[string]any) (string, string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", err
		}
	}
	// Argo CD's reduced os library has time and date only; the check must not need more.
	osTable := l.NewTable()
	osTable.RawSetString("time", l.NewFunction(func(l *lua.LState) int { l.Push(lua.LNumber(0)); return 1 }))
	osTable.RawSetString("date", l.NewFunction(func(l *lua.LState) int { l.Push(lua.LString("")); return 1 }))
	l.SetGlobal("os", osTable)
	l.SetGlobal("obj", toLua(l, obj))

	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	status := lua.LVAsString(result.RawGetString("status"))
	if !validStatus[status] {
		return "", "", fmt.Errorf("the script returned an invalid health status %q", status)
	}
	return status, lua.LVAsString(result.RawGetString("message")), nil
}

// toLua converts decoded JSON into Lua values as Argo CD does for an object: numbers, strings,
// booleans, arrays as sequences, objects as tables, null as nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetH(lua.LString(key), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(code)
}
